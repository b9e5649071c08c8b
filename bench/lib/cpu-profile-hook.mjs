// Loaded with NODE_OPTIONS="--import <this file>" (node refuses --cpu-prof there) into every
// process a command starts: with KS_CPU_PROF_DIR set, SIGUSR2 starts V8's sampling profiler
// and the next SIGUSR2 stops it and writes DIR/<pid>.cpuprofile. So a profile covers just
// the window a bench chooses (bench/profile-cluster.sh), not start-up or preload.
import fs from 'node:fs';
import inspector from 'node:inspector';

const dir = process.env.KS_CPU_PROF_DIR;
if (dir) {
  const s = new inspector.Session();
  s.connect();
  s.post('Profiler.enable');
  s.post('Profiler.setSamplingInterval', { interval: 500 });
  let on = false;
  process.on('SIGUSR2', () => {
    if (!on) {
      s.post('Profiler.start');
      on = true;
      return;
    }
    on = false;
    s.post('Profiler.stop', (err, r) => {
      if (!err) fs.writeFileSync(`${dir}/${process.pid}.cpuprofile`, JSON.stringify(r.profile));
    });
  });
}
