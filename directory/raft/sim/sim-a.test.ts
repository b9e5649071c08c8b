// Seeds 1–1000 of the whole-cluster simulation; sim-b (1001–2000) runs the other half.
import { simulationSuite } from './sim-suite.ts';

simulationSuite(1, 1000);
