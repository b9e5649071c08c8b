// What every bench's JSON says of the machine: a figure means little without the cores it
// ran on and how busy they were.
import fs from 'node:fs';
import os from 'node:os';

export function machineInfo() {
  return {
    cores: os.availableParallelism?.() ?? os.cpus().length,
    cpu: os.cpus()[0]?.model,
    memGiB: +(os.totalmem() / 1024 ** 3).toFixed(1),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  };
}

export const loadAvg = (): number[] => os.loadavg().map((x) => +x.toFixed(2));

/** % of the last 10 s in which some task waited for a CPU (Linux PSI), or null. */
export function cpuPressure(): number | null {
  try {
    const m = /some avg10=([\d.]+)/.exec(fs.readFileSync('/proc/pressure/cpu', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}
