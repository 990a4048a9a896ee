# target3-trace-stages.py: the stages of each message in a Go runtime trace of a server at
# target 3's load (docs/bench/extra/target3-trace.txt). Input: the output of
# "go tool trace -d=parsed TRACE". Prints the median, p10 and p90 of each stage over the
# messages it finds (a reader queues a send; the group commit answers it; the writers write it).
import re,sys,statistics as st
lines=open(sys.argv[1]).read().split('\n')
hdr=re.compile(r'^M=(-?\d+) P=(-?\d+) G=(-?\d+) StateTransition Time=(\d+) (GoID|ProcID)=(-?\d+) (\S+) Reason="([^"]*)"')
ev=[];i=0
while i<len(lines):
    m=hdr.match(lines[i])
    if not m: i+=1; continue
    M,P,G,T,kind,ID,tr,reason=m.groups()
    j=i+1; fr=[]
    while j<len(lines) and not lines[j].startswith('M='):
        s=lines[j].strip()
        if ' @ 0x' in s: fr.append(s.split(' @ ')[0])
        j+=1
    ev.append(dict(T=int(T)/1000.0,M=int(M),P=int(P),G=int(G),kind=kind,ID=int(ID),tr=tr,st=' '.join(fr[:12])))
    i=j
ev.sort(key=lambda e:e['T'])
Q=[k for k,e in enumerate(ev) if e['kind']=='GoID' and e['tr']=='Waiting->Runnable' and 'CommitQueue).Queue' in e['st']]
rows=[]
for qi,k in enumerate(Q):
    q=ev[k]; reader=q['G']; batcher=q['ID']
    end=Q[qi+1] if qi+1<len(Q) else len(ev)
    # reader's wake before q
    A=S=None
    for e in reversed(ev[:k]):
        if e['kind']=='GoID' and e['ID']==reader:
            if e['tr']=='Runnable->Running' and S is None: S=e['T']
            if e['tr']=='Waiting->Runnable': A=e['T']; break
            if e['tr'].endswith('->Waiting'): break
    C0=C1=W=F=L=None; nw=0; wakes=[]; readied={}
    for e in ev[k:end]:
        if e['kind']!='GoID': continue
        if C0 is None and e['ID']==batcher and e['tr']=='Runnable->Running': C0=e['T']
        if C1 is None and e['tr']=='Waiting->Runnable' and 'AppendRequest).Answer' in e['st']: C1=e['T']
        if C1 and e['tr']=='Waiting->Runnable' and 'writers).start' in e['st']:
            if W is None: W=e['T']
            readied[e['ID']]=e['T']
        if e['tr']=='Runnable->Running' and e['ID'] in readied:
            wakes.append(e['T']-readied.pop(e['ID']))
        if C1 and e['tr']=='Running->Syscall' and 'writeOp).write' in e['st']:
            nw+=1
            if F is None: F=e['T']
            L=e['T']
            if nw==50: H=e['T']
    if None in (A,S,C0,C1,W,F) or nw<100: continue
    rows.append(dict(wake_to_run=S-A, read_decode_queue=q['T']-S, to_batcher=C0-q['T'], commit=C1-C0,
        publish_to_writer_wake=W-C1, first_write=F-C1, write50=H-C1, last_write=L-C1, writes=nw,
        writer_ready_to_running=max(wakes) if wakes else 0, total_arrive_to_50th=H-A))
print(len(rows),'messages with',sys.argv[1])
for key in rows[0]:
    v=[r[key] for r in rows]
    print(f"{key:26} median {st.median(v):8.1f}  p10 {sorted(v)[len(v)//10]:8.1f}  p90 {sorted(v)[len(v)*9//10]:8.1f}")
