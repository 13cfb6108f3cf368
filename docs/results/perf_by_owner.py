#!/usr/bin/env python3
"""Split a `pushup-loadtest floor -perf-record DIR` profile by where the CPU
went, in microseconds per delivery (samples at 999 Hz):

  - kernel time by the system call it was spent in (the frame just above
    do_syscall_64), or "kernel:other" outside any system call;
  - user time by owner: Go runtime groups (GC, allocation, scheduler,
    sysmon) first, then the innermost PushUp function, nginx, Nchan, libc.

Usage: perf_by_owner.py DIR/pushup.perf.data [deliveries, default 75000]
"""
import collections
import re
import subprocess
import sys

HZ = 999


def samples(path):
    out = subprocess.run(['perf', 'script', '-i', path, '-F', 'ip,sym,dso'],
                         capture_output=True, text=True, check=True).stdout
    for block in out.split('\n\n'):
        frames = [line.strip() for line in block.strip().splitlines()]
        if frames:
            yield frames


SYS = re.compile(r'__(?:x64|se|do)_sys_(\w+)')
RUNTIME = [('gcBgMarkWorker', 'go: GC background mark'), ('gcAssist', 'go: GC assist'),
           ('bgsweep', 'go: GC sweep'), ('bgscavenge', 'go: scavenger'), ('runtime.sysmon', 'go: sysmon'),
           ('findRunnable', 'go: scheduler'), ('runtime.schedule', 'go: scheduler'), ('runtime.mcall', 'go: scheduler'),
           ('mallocgc', 'go: allocation'), ('exitsyscall', 'go: syscall bookkeeping'),
           ('entersyscall', 'go: syscall bookkeeping')]


def kernel_entry(frames):
    calls = [i for i, f in enumerate(frames) if 'do_syscall_64' in f]
    if not calls:
        return 'kernel: other (interrupts, faults)' if '[kernel' in frames[0] else None
    i = calls[-1] - 1
    if i < 0:
        return 'sys: entry'
    m = SYS.search(frames[i])
    name = m.group(1) if m else frames[i].split(None, 1)[-1].split('+')[0].split(' (')[0]
    return 'sys: ' + re.sub(r'^(ksys_|__sys_|do_|__x64_sys_)', '', name)


def user_owner(frames):
    joined = ' '.join(frames)
    for pattern, name in RUNTIME:
        if pattern in joined:
            return name
    for f in frames:
        m = re.search(r'github\.com/pushuphq/pushup/(\S+)', f)
        if m:
            return m.group(1)
    for f in frames:
        if 'ngx_nchan_module' in f:
            return 'nchan module'
    for f in frames:
        if '/usr/sbin/nginx' in f:
            return 'nginx'
        if 'libc.so' in f:
            return 'libc'
    return 'other'


def main():
    path = sys.argv[1]
    deliveries = int(sys.argv[2]) if len(sys.argv) > 2 else 75000
    where, owners, total = collections.Counter(), collections.Counter(), 0
    for frames in samples(path):
        total += 1
        k = kernel_entry(frames)
        where[k or 'user'] += 1
        if k is None:
            owners[user_owner(frames)] += 1
    us = lambda n: n / HZ * 1e6 / deliveries
    print(f'{path}: {total} samples, {us(total):.2f} us per delivery')
    print('where (kernel by system call, and user):')
    for k, v in where.most_common(14):
        print(f'  {100 * v / total:5.1f}%  {us(v):6.2f} us  {k}')
    print('user time by owner:')
    for k, v in owners.most_common(24):
        print(f'  {100 * v / total:5.1f}%  {us(v):6.2f} us  {k}')


if __name__ == '__main__':
    main()
