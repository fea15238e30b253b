import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { repoRoot } from './paths';

/**
 * A one-node Slurm cluster on this machine for the tests: munged with a key made here, slurmctld
 * and slurmd on free ports, everything (configuration, state, logs, the munge socket) under `dir`.
 * Needs root and Debian's slurm-wlm and munge (scripts/ensure-slurm.sh installs them when it can);
 * `skipReason()` is the one line the tests skip with otherwise. `stop()` cancels every job and
 * ends the daemons, leaving nothing running.
 */

export interface SlurmCluster {
  /** The environment of a process that talks to this cluster (SLURM_CONF). */
  env: NodeJS.ProcessEnv;
  partition: string;
  run(command: string, args: string[]): string;
  stop(): void;
}

export function slurmSkipReason(): string | false {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return 'the Slurm tests start slurmctld, slurmd and munged, which needs root on Linux';
  const r = spawnSync('sh', [path.join(repoRoot(), 'scripts', 'ensure-slurm.sh')], { encoding: 'utf8' });
  return r.status === 0 ? false : (r.stdout.trim() || r.stderr.trim() || 'scripts/ensure-slurm.sh failed');
}

export function startSlurmCluster(dir: string): SlurmCluster {
  const host = os.hostname().split('.')[0];
  const port = 20000 + (process.pid % 20000);
  const munge = path.join(dir, 'munge');
  fs.mkdirSync(munge, { recursive: true, mode: 0o700 });
  fs.mkdirSync(path.join(dir, 'state'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'spool'), { recursive: true });
  const key = path.join(munge, 'munge.key');
  fs.writeFileSync(key, crypto.randomBytes(1024), { mode: 0o400 });
  const socket = path.join(munge, 'munge.socket');
  const conf = path.join(dir, 'slurm.conf');
  const at = (name: string) => path.join(dir, name);
  fs.writeFileSync(conf, [
    'ClusterName=triplex-test', `SlurmctldHost=${host}`, `SlurmctldPort=${port}`, `SlurmdPort=${port + 1}`,
    'AuthType=auth/munge', `AuthInfo=socket=${socket}`, 'SlurmUser=root', 'SlurmdUser=root',
    `StateSaveLocation=${at('state')}`, `SlurmdSpoolDir=${at('spool')}`, `SlurmctldPidFile=${at('slurmctld.pid')}`, `SlurmdPidFile=${at('slurmd.pid')}`,
    `SlurmctldLogFile=${at('slurmctld.log')}`, `SlurmdLogFile=${at('slurmd.log')}`,
    'ProctrackType=proctrack/linuxproc', 'TaskPlugin=task/none', 'SelectType=select/cons_tres', 'SelectTypeParameters=CR_Core',
    'JobAcctGatherType=jobacct_gather/none', 'AccountingStorageType=accounting_storage/none', 'JobCompType=jobcomp/none',
    'MpiDefault=none', 'ReturnToService=2', 'MaxArraySize=2', // arrays of 2 tasks: a larger grid goes in chunks
     'MinJobAge=600', 'KillWait=5', 'SchedulerParameters=sched_interval=1',
    `NodeName=${host} CPUs=2 RealMemory=4000 State=UNKNOWN`,
    `PartitionName=triplex Nodes=${host} Default=YES MaxTime=INFINITE State=UP`, '',
  ].join('\n'));
  const env = { ...process.env, SLURM_CONF: conf };
  const run = (command: string, args: string[]) => {
    const r = spawnSync(command, args, { encoding: 'utf8', env });
    if (r.status !== 0) throw new Error(`${command} ${args.join(' ')}: ${r.stderr || r.stdout || r.error?.message}`);
    return r.stdout;
  };
  const pidFiles = ['slurmd.pid', 'slurmctld.pid', 'munge/munged.pid'].map(at);
  const stop = () => {
    spawnSync('scancel', ['--full', '--me'], { env });
    const pids = pidFiles.flatMap((f) => (fs.existsSync(f) ? [Number(fs.readFileSync(f, 'utf8').trim())] : [])).filter((p) => p > 0);
    const alive = () => pids.filter((p) => {
      try {
        process.kill(p, 0);
        return true;
      } catch {
        return false;
      }
    });
    for (const p of alive()) process.kill(p, 'SIGTERM');
    const until = Date.now() + 15_000;
    while (alive().length && Date.now() < until) spawnSync('sleep', ['0.2']);
    for (const p of alive()) process.kill(p, 'SIGKILL');
  };
  try {
    run('munged', ['--force', `--key-file=${key}`, `--socket=${socket}`, `--pid-file=${path.join(munge, 'munged.pid')}`, `--log-file=${path.join(munge, 'munged.log')}`, `--seed-file=${path.join(munge, 'seed')}`]);
    run('slurmctld', ['-f', conf]);
    run('slurmd', ['-f', conf]);
    // The node registers within seconds; jobs submitted before would pend a while.
    const until = Date.now() + 30_000;
    while (!/idle/.test(spawnSync('sinfo', ['--noheader', '--format=%T'], { encoding: 'utf8', env }).stdout)) {
      if (Date.now() > until) throw new Error(`the test cluster's node did not become idle; see ${at('slurmctld.log')} and ${at('slurmd.log')}`);
      spawnSync('sleep', ['0.3']);
    }
  } catch (e) {
    stop();
    throw e;
  }
  return { env, partition: 'triplex', run, stop };
}
