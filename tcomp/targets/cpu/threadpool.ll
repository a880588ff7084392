; tcomp's CPU thread pool: the runtime that parallel loops run on (threadpool.py loads it).
;
;   void tcomp_parallel_for(void (*body)(void *closure, int64_t chunk), void *closure,
;                           int64_t num_chunks, int32_t num_threads);
;   void tcomp_pool_init(void);        /* once per process, before the first tcomp_parallel_for */
;   void tcomp_pool_after_fork(void);  /* in the child of a fork (pthread_atfork's child handler) */
;
; A job is `body(closure, c)` for every chunk c < num_chunks, in any order, on at most
; num_threads threads (at most MAX_THREADS): participant 0 is the caller, participant i + 1
; worker i. Participant k owns the chunks [k * n / T, (k + 1) * n / T) of n chunks and T threads,
; as a static schedule would give them (so consecutive kernels find their rows in the same core's
; cache); its range is one word of @ranges, (end << 32) | next. A participant claims its own
; chunks from the front, one compare-and-swap each; when its range is empty it takes the last
; chunk of another's range. The caller runs its chunks, then every chunk left anywhere, then
; waits only for chunks that others claimed and still run (@done counts finished chunks): a
; worker the OS has not scheduled has claimed nothing, so nobody waits for it.
;
; A worker reads the job's body and closure after a claim succeeded: the job cannot finish before
; that chunk does, so they are the current job's. Outside a job every range is empty; a worker
; that loaded a range word during an earlier job succeeds only on a word equal to the current
; one, which names an unclaimed chunk of the current job.
;
; Workers spin (SPIN_POLLS polls with a pause) after the last chunk they ran, then sleep on the
; condition variable @wake; a caller that finds sleepers broadcasts it, and the workers the job
; admits spin again. The caller spins as long on @done before it sleeps on @finished. Sleeping on
; either follows one pattern: count oneself as sleeping (@sleepers, @waiting) with sequentially
; consistent atomics, then re-check, under @mutex; the other side changes the condition, then
; reads the count.
;
; One job runs at a time (@busy): a call made while another runs -- from a chunk (nesting),
; from a worker or from another caller thread -- runs its chunks in the calling thread, in order.
; So does a call with one chunk or one thread. Workers start when a call first needs them and
; live as long as the process; a forked child starts its own after tcomp_pool_after_fork.
;
; Platform: 64-bit POSIX. pthread_mutex_t and pthread_cond_t are opaque, so each gets 128 bytes
; (glibc: 40 and 48, macOS: 64 and 48); pthread_t is 64 bits (an integer on Linux, a pointer on
; macOS). The loader appends @tcomp_pause, the CPU's spin-wait hint.

@ranges = internal global [512 x [8 x i64]] zeroinitializer, align 64  ; per participant, a cache line each
@participants = internal global i64 0, align 64  ; T of the current job
@chunks = internal global i64 0, align 64        ; n of the current job
@done = internal global i64 0, align 64          ; chunks of the current job that finished
@body = internal global ptr null, align 64       ; the current job
@closure = internal global ptr null, align 64
@busy = internal global i32 0, align 64          ; 1 while a job runs
@workers = internal global i64 0, align 64       ; worker threads started
@sleepers = internal global i32 0, align 64      ; workers sleeping on @wake (or about to)
@waiting = internal global i32 0, align 64       ; 1 while the caller sleeps on @finished (or is about to)
@mutex = internal global [128 x i8] zeroinitializer, align 64
@wake = internal global [128 x i8] zeroinitializer, align 64
@finished = internal global [128 x i8] zeroinitializer, align 64

declare i32 @pthread_create(ptr, ptr, ptr, ptr)
declare i32 @pthread_detach(i64)
declare i32 @pthread_mutex_init(ptr, ptr)
declare i32 @pthread_mutex_lock(ptr)
declare i32 @pthread_mutex_unlock(ptr)
declare i32 @pthread_cond_init(ptr, ptr)
declare i32 @pthread_cond_wait(ptr, ptr)
declare i32 @pthread_cond_broadcast(ptr)
declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)

@MAX_THREADS = internal constant i64 512  ; the length of @ranges; more threads take no part

; Polls of a spinning thread before it sleeps, with a pause each: ~70 ns on Zen 5, ~40 ns on
; recent Intel cores, so about 0.5-1 ms. That covers the gap between two kernels of a model (a few
; us) and the end of a region whose last chunk runs on another thread (up to a chunk's time), which
; would otherwise cost a wake-up (tens of us) per region.
@SPIN_POLLS = internal constant i64 16384

define void @tcomp_pool_init() {
  %1 = call i32 @pthread_mutex_init(ptr @mutex, ptr null)
  %2 = call i32 @pthread_cond_init(ptr @wake, ptr null)
  %3 = call i32 @pthread_cond_init(ptr @finished, ptr null)
  ret void
}

; The child of a fork has only the forking thread: no workers, no job (a job of another thread
; may have left chunks in @ranges), the mutex possibly held by a thread that is gone.
define void @tcomp_pool_after_fork() {
  call void @llvm.memset.p0.i64(ptr @ranges, i8 0, i64 32768, i1 false)
  store i64 0, ptr @workers
  store i64 0, ptr @participants
  store i32 0, ptr @busy
  store i32 0, ptr @sleepers
  store i32 0, ptr @waiting
  call void @tcomp_pool_init()
  ret void
}

define void @tcomp_parallel_for(ptr %fn, ptr %arg, i64 %chunks, i32 %threads) {
entry:
  %few = icmp sle i64 %chunks, 1
  %alone = icmp sle i32 %threads, 1
  %huge = icmp sgt i64 %chunks, 2147483647
  %a = or i1 %few, %alone
  %inline = or i1 %a, %huge
  br i1 %inline, label %serial, label %acquire

acquire:
  %taken = cmpxchg ptr @busy, i32 0, i32 1 acquire monotonic
  %ours = extractvalue { i32, i1 } %taken, 1
  br i1 %ours, label %pooled, label %serial

serial:
  %i = phi i64 [ 0, %entry ], [ 0, %acquire ], [ %i.next, %serial.body ]
  %more = icmp slt i64 %i, %chunks
  br i1 %more, label %serial.body, label %exit

serial.body:
  call void %fn(ptr %arg, i64 %i)
  %i.next = add i64 %i, 1
  br label %serial

pooled:
  %threads64 = sext i32 %threads to i64
  %max = load i64, ptr @MAX_THREADS
  %capped = icmp sgt i64 %threads64, %max
  %t = select i1 %capped, i64 %max, i64 %threads64
  %want = sub i64 %t, 1
  call void @start_workers(i64 %want)
  store atomic ptr %fn, ptr @body monotonic, align 8
  store atomic ptr %arg, ptr @closure monotonic, align 8
  store atomic i64 %chunks, ptr @chunks monotonic, align 8
  store atomic i64 0, ptr @done monotonic, align 8
  store atomic i64 %t, ptr @participants seq_cst, align 8
  br label %open

open:                                              ; participant k's range: [k * n / t, (k + 1) * n / t)
  %k = phi i64 [ 0, %pooled ], [ %k.next, %open ]
  %k.next = add i64 %k, 1
  %lo.n = mul i64 %k, %chunks
  %lo = sdiv i64 %lo.n, %t
  %hi.n = mul i64 %k.next, %chunks
  %hi = sdiv i64 %hi.n, %t
  %hi.high = shl i64 %hi, 32
  %word = or i64 %hi.high, %lo
  %slot = getelementptr [512 x [8 x i64]], ptr @ranges, i64 0, i64 %k, i64 0
  store atomic i64 %word, ptr %slot seq_cst, align 8
  %opened = icmp eq i64 %k.next, %t
  br i1 %opened, label %opened.all, label %open

opened.all:
  %sleeping = load atomic i32, ptr @sleepers seq_cst, align 4
  %anyone = icmp ne i32 %sleeping, 0
  br i1 %anyone, label %wake, label %work

wake:
  call void @broadcast(ptr @wake)
  br label %work

work:
  %ran = call i1 @run_one(i64 0)
  br i1 %ran, label %work, label %drain

drain:
  call void @wait_done(i64 %chunks)
  store atomic i32 0, ptr @busy release, align 4
  br label %exit

exit:
  ret void
}

; Claims a chunk of range %k: its next one (%front) or its last; -1 when the range is empty.
define internal i64 @claim(i64 %k, i1 %front) {
entry:
  %slot = getelementptr [512 x [8 x i64]], ptr @ranges, i64 0, i64 %k, i64 0
  %first = load atomic i64, ptr %slot monotonic, align 8
  br label %try

try:
  %w = phi i64 [ %first, %entry ], [ %seen, %swap ]
  %end = lshr i64 %w, 32
  %next = and i64 %w, 4294967295
  %left = icmp ult i64 %next, %end
  br i1 %left, label %swap, label %empty

swap:
  %w.front = add i64 %w, 1
  %w.back = sub i64 %w, 4294967296
  %w.new = select i1 %front, i64 %w.front, i64 %w.back
  %last = sub i64 %end, 1
  %c = select i1 %front, i64 %next, i64 %last
  %r = cmpxchg ptr %slot, i64 %w, i64 %w.new acquire monotonic
  %seen = extractvalue { i64, i1 } %r, 0
  %ok = extractvalue { i64, i1 } %r, 1
  br i1 %ok, label %claimed, label %try

claimed:
  ret i64 %c

empty:
  ret i64 -1
}

; Participant %k runs one chunk: the next of its own range, else the last of another's (looking
; from participant %k + 1 on); false when no chunk is left.
define internal i1 @run_one(i64 %k) {
entry:
  %own = call i64 @claim(i64 %k, i1 true)
  %has.own = icmp sge i64 %own, 0
  br i1 %has.own, label %run, label %steal.start

steal.start:
  %t = load atomic i64, ptr @participants monotonic, align 8
  br label %steal

steal:
  %i = phi i64 [ 1, %steal.start ], [ %i.next, %steal.next ]
  %more = icmp ult i64 %i, %t
  br i1 %more, label %steal.try, label %none

steal.try:
  %j.raw = add i64 %k, %i
  %wraps = icmp uge i64 %j.raw, %t
  %j.wrapped = sub i64 %j.raw, %t
  %j = select i1 %wraps, i64 %j.wrapped, i64 %j.raw
  %stolen = call i64 @claim(i64 %j, i1 false)
  %has.stolen = icmp sge i64 %stolen, 0
  br i1 %has.stolen, label %run, label %steal.next

steal.next:
  %i.next = add i64 %i, 1
  br label %steal

run:
  %c = phi i64 [ %own, %entry ], [ %stolen, %steal.try ]
  %fn = load atomic ptr, ptr @body monotonic, align 8
  %arg = load atomic ptr, ptr @closure monotonic, align 8
  %n = load atomic i64, ptr @chunks monotonic, align 8
  call void %fn(ptr %arg, i64 %c)
  %before = atomicrmw add ptr @done, i64 1 seq_cst
  %after = add i64 %before, 1
  %last = icmp eq i64 %after, %n
  br i1 %last, label %last.chunk, label %ran

last.chunk:
  %w = load atomic i32, ptr @waiting seq_cst, align 4
  %asleep = icmp ne i32 %w, 0
  br i1 %asleep, label %signal, label %ran

signal:
  call void @broadcast(ptr @finished)
  br label %ran

ran:
  ret i1 true

none:
  ret i1 false
}

; Waits until @done reaches %chunks: spins, then sleeps on @finished.
define internal void @wait_done(i64 %chunks) {
entry:
  br label %poll

poll:
  %spins = phi i64 [ 0, %entry ], [ %spins.next, %spin ]
  %d = load atomic i64, ptr @done acquire, align 8
  %finished = icmp sge i64 %d, %chunks
  br i1 %finished, label %exit, label %more

more:
  %limit = load i64, ptr @SPIN_POLLS
  %patient = icmp ult i64 %spins, %limit
  br i1 %patient, label %spin, label %sleep

spin:
  call void @tcomp_pause()
  %spins.next = add i64 %spins, 1
  br label %poll

sleep:
  %1 = call i32 @pthread_mutex_lock(ptr @mutex)
  store atomic i32 1, ptr @waiting seq_cst, align 4
  br label %check

check:
  %d2 = load atomic i64, ptr @done seq_cst, align 8
  %finished2 = icmp sge i64 %d2, %chunks
  br i1 %finished2, label %up, label %block

block:
  %2 = call i32 @pthread_cond_wait(ptr @finished, ptr @mutex)
  br label %check

up:
  store atomic i32 0, ptr @waiting seq_cst, align 4
  %3 = call i32 @pthread_mutex_unlock(ptr @mutex)
  br label %exit

exit:
  ret void
}

; Wakes every thread sleeping on %cond (taking @mutex first, so that no sleeper is between its
; check and its wait).
define internal void @broadcast(ptr %cond) {
  %1 = call i32 @pthread_mutex_lock(ptr @mutex)
  %2 = call i32 @pthread_mutex_unlock(ptr @mutex)
  %3 = call i32 @pthread_cond_broadcast(ptr %cond)
  ret void
}

; Starts workers until %want run (a failed pthread_create leaves fewer: the others run their chunks).
define internal void @start_workers(i64 %want) {
entry:
  %tid = alloca i64, align 8
  br label %check

check:
  %have = load i64, ptr @workers, align 8
  %enough = icmp sge i64 %have, %want
  br i1 %enough, label %exit, label %start

start:
  %id = inttoptr i64 %have to ptr
  %rc = call i32 @pthread_create(ptr %tid, ptr null, ptr @worker, ptr %id)
  %failed = icmp ne i32 %rc, 0
  br i1 %failed, label %exit, label %started

started:
  %t = load i64, ptr %tid, align 8
  %1 = call i32 @pthread_detach(i64 %t)
  %have.next = add i64 %have, 1
  store i64 %have.next, ptr @workers, align 8
  br label %check

exit:
  ret void
}

; Worker %id (participant %id + 1): runs chunks of every job that admits it; spins after its last
; chunk, then sleeps until a job admits it.
define internal ptr @worker(ptr %id.ptr) {
entry:
  %id = ptrtoint ptr %id.ptr to i64
  %k = add i64 %id, 1
  br label %poll

poll:
  %spins = phi i64 [ 0, %entry ], [ 0, %poll.ran ], [ %spins.next, %spin ], [ 0, %up ]
  %admitted = call i1 @admits(i64 %k)
  br i1 %admitted, label %poll.try, label %idle

poll.try:
  %ran = call i1 @run_one(i64 %k)
  br i1 %ran, label %poll.ran, label %idle

poll.ran:
  br label %poll

idle:
  %limit = load i64, ptr @SPIN_POLLS
  %patient = icmp ult i64 %spins, %limit
  br i1 %patient, label %spin, label %sleep

spin:
  call void @tcomp_pause()
  %spins.next = add i64 %spins, 1
  br label %poll

sleep:
  %1 = call i32 @pthread_mutex_lock(ptr @mutex)
  %2 = atomicrmw add ptr @sleepers, i32 1 seq_cst
  %work = call i1 @has_work(i64 %k)
  br i1 %work, label %up, label %block

; Woken: spin again if the current job admits this worker, even when its chunks are gone by now
; (a job of a few short chunks is over before a worker wakes; the next one comes soon).
block:
  %3 = call i32 @pthread_cond_wait(ptr @wake, ptr @mutex)
  %in = call i1 @admits(i64 %k)
  br i1 %in, label %up, label %block

up:
  %4 = atomicrmw sub ptr @sleepers, i32 1 seq_cst
  %5 = call i32 @pthread_mutex_unlock(ptr @mutex)
  br label %poll
}

define internal i1 @admits(i64 %k) {
  %t = load atomic i64, ptr @participants seq_cst, align 8
  %in = icmp ult i64 %k, %t
  ret i1 %in
}

; Whether the current job admits participant %k and has unclaimed chunks.
define internal i1 @has_work(i64 %k) {
entry:
  %t = load atomic i64, ptr @participants seq_cst, align 8
  %in = icmp ult i64 %k, %t
  br i1 %in, label %scan, label %no

scan:
  %j = phi i64 [ 0, %entry ], [ %j.next, %scan.next ]
  %slot = getelementptr [512 x [8 x i64]], ptr @ranges, i64 0, i64 %j, i64 0
  %w = load atomic i64, ptr %slot seq_cst, align 8
  %end = lshr i64 %w, 32
  %next = and i64 %w, 4294967295
  %left = icmp ult i64 %next, %end
  br i1 %left, label %yes, label %scan.next

scan.next:
  %j.next = add i64 %j, 1
  %more = icmp ult i64 %j.next, %t
  br i1 %more, label %scan, label %no

yes:
  ret i1 true

no:
  ret i1 false
}
