// Seeds 1001–2000 of the whole-cluster simulation; sim-a (1–1000) runs the other half.
import { simulationSuite } from './sim-suite.ts';

simulationSuite(1001, 1000);
