#!/usr/bin/env python3
"""Per fan-out burst of a `perf record -e syscalls:sys_enter_write,syscalls:sys_enter_read`
recording of pushupd: how long after the first answer write the median, 99th-percentile and
last writes came, and how many re-poll reads came before the median and the last write.

Usage: write_spread.py FILE.perf.data
"""
import subprocess,sys
# per fan-out burst: time from the first answer write to the last, and to the last re-poll read
out=subprocess.run(['perf','script','-i',sys.argv[1],'-F','time,event,trace'],capture_output=True,text=True).stdout
ev=[]
for l in out.splitlines():
    p=l.split()
    if len(p)<2: continue
    t=float(p[0].rstrip(':')); kind='w' if 'write' in l else 'r'
    ev.append((t,kind))
ev.sort()
bursts=[];cur=[]
for e in ev:
    if cur and e[0]-cur[-1][0]>0.5: bursts.append(cur);cur=[]
    cur.append(e)
if cur: bursts.append(cur)
for b in bursts:
    ws=[t for t,k in b if k=='w']; rs=[t for t,k in b if k=='r']
    if len(ws)<1000: continue
    t0=ws[0]; ws.sort()
    p=lambda q: (ws[int(q*(len(ws)-1))]-t0)*1000
    print(f"writes {len(ws)} reads {len(rs)}: write p50 {p(.5):.0f} ms p99 {p(.99):.0f} ms last {p(1):.0f} ms; reads done {(max(rs)-t0)*1000:.0f} ms")
for b in bursts:
    ws=[t for t,k in b if k=='w']; rs=[t for t,k in b if k=='r']
    if len(ws)<1000 or len(ws)>16000 or len(rs)>16000: continue
    lw=max(ws); mid=sorted(ws)[len(ws)//2]
    print(f"  reads before the median write {sum(1 for t in rs if t<mid)/len(rs):.2f}, before the last write {sum(1 for t in rs if t<lw)/len(rs):.2f}")
