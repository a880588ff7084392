; tcomp's CPU thread pool: the runtime that parallel loops run on (threadpool.py loads it).
;
;   void tcomp_parallel_for(void (*body)(void *closure, int64_t chunk), void *closure,
;                           int64_t num_chunks, int32_t num_threads);
;   void tcomp_pool_init(void);        /* once per process, before the first tcomp_parallel_for */
;   void tcomp_pool_after_fork(void);  /* in the child of a fork (pthread_atfork's child handler) */
;
; A job is `body(closure, c)` for every chunk c < num_chunks, in any order, on at most
; num_threads threads: the caller and workers 0 .. num_threads - 2. Chunks are claimed one at a
; time by compare-and-swap on @state, which holds the job's chunk count (high 32 bits) and its
; next unclaimed chunk (low 32 bits). The caller claims too until none is left, then waits only
; for the chunks that others claimed and still run (@done counts finished chunks); a worker the
; OS has not scheduled yet has claimed nothing, so nobody waits for it. A worker reads the job's
; body and closure after its claim succeeded: the job cannot finish before that chunk does, so
; they are the current job's (a worker that loaded @state during an earlier job can only
; succeed on a word equal to the current one, which names a chunk of the current job).
;
; Workers spin (SPIN_POLLS polls with a pause) after the last chunk they ran, then sleep on the
; condition variable @wake; a caller that finds sleepers broadcasts it. The caller spins as long
; on @done before it sleeps on @finished. Sleeping on either follows the same pattern: count
; oneself as sleeping (@sleepers, @waiting) with sequentially consistent atomics, then re-check,
; under @mutex; the other side changes the condition, then reads the count.
;
; One job runs at a time (@busy): a call made while another runs -- from a chunk (nesting),
; from a worker or from another caller thread -- runs its chunks in the calling thread, in order.
; So does a call with one chunk or one thread. Workers start when a call first needs them and
; live as long as the process; a forked child starts its own after tcomp_pool_after_fork.
;
; Platform: 64-bit POSIX. pthread_mutex_t and pthread_cond_t are opaque, so each gets 128 bytes
; (glibc: 40 and 48, macOS: 64 and 48); pthread_t is 64 bits (an integer on Linux, a pointer on
; macOS). The loader appends @tcomp_pause, the CPU's spin-wait hint.

@state = internal global i64 0, align 64        ; (num_chunks << 32) | next unclaimed chunk
@done = internal global i64 0, align 64         ; chunks of the current job that finished
@body = internal global ptr null, align 64      ; the current job
@closure = internal global ptr null, align 64
@helpers = internal global i64 0, align 64      ; workers with an id below it may take chunks
@busy = internal global i32 0, align 64         ; 1 while a job runs
@workers = internal global i64 0, align 64      ; worker threads started
@sleepers = internal global i32 0, align 64     ; workers sleeping on @wake (or about to)
@waiting = internal global i32 0, align 64      ; 1 while the caller sleeps on @finished (or is about to)
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

; Polls of a spinning thread before it sleeps (with a pause each: ~80 ns on Zen 5, 40 ns on
; recent Intel cores, so 0.1-0.2 ms; the gap between two kernels of a model is a few us).
@SPIN_POLLS = internal constant i64 2048

define void @tcomp_pool_init() {
  %1 = call i32 @pthread_mutex_init(ptr @mutex, ptr null)
  %2 = call i32 @pthread_cond_init(ptr @wake, ptr null)
  %3 = call i32 @pthread_cond_init(ptr @finished, ptr null)
  ret void
}

; The child of a fork has only the forking thread: no workers, no job, the mutex possibly held
; by a thread that is gone.
define void @tcomp_pool_after_fork() {
  store i64 0, ptr @workers
  store i64 0, ptr @state
  store i64 0, ptr @helpers
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
  %want = sub i64 %threads64, 1
  call void @start_workers(i64 %want)
  store atomic ptr %fn, ptr @body monotonic, align 8
  store atomic ptr %arg, ptr @closure monotonic, align 8
  store atomic i64 0, ptr @done monotonic, align 8
  store atomic i64 %want, ptr @helpers monotonic, align 8
  %open = shl i64 %chunks, 32
  store atomic i64 %open, ptr @state seq_cst, align 8
  %sleeping = load atomic i32, ptr @sleepers seq_cst, align 4
  %anyone = icmp ne i32 %sleeping, 0
  br i1 %anyone, label %wake, label %work

wake:
  call void @broadcast(ptr @wake)
  br label %work

work:
  %ran = call i1 @run_one()
  br i1 %ran, label %work, label %drain

drain:
  call void @wait_done(i64 %chunks)
  store atomic i32 0, ptr @busy release, align 4
  br label %exit

exit:
  ret void
}

; Claims the next chunk of the current job and runs it; false when none is left.
define internal i1 @run_one() {
entry:
  %first = load atomic i64, ptr @state monotonic, align 8
  br label %try

try:
  %s = phi i64 [ %first, %entry ], [ %seen, %claim ]
  %n = lshr i64 %s, 32
  %c = and i64 %s, 4294967295
  %left = icmp ult i64 %c, %n
  br i1 %left, label %claim, label %none

claim:
  %s.next = add i64 %s, 1
  %swap = cmpxchg ptr @state, i64 %s, i64 %s.next acquire monotonic
  %seen = extractvalue { i64, i1 } %swap, 0
  %ok = extractvalue { i64, i1 } %swap, 1
  br i1 %ok, label %run, label %try

run:
  %fn = load atomic ptr, ptr @body monotonic, align 8
  %arg = load atomic ptr, ptr @closure monotonic, align 8
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

; Starts workers until %want run (a failed pthread_create leaves fewer: the caller runs their chunks).
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

; Worker %id: runs chunks of every job that admits it; spins after its last chunk, then sleeps
; until a job that admits it has chunks left.
define internal ptr @worker(ptr %id.ptr) {
entry:
  %id = ptrtoint ptr %id.ptr to i64
  br label %poll

poll:
  %spins = phi i64 [ 0, %entry ], [ 0, %poll.ran ], [ %spins.next, %spin ], [ 0, %up ]
  %admitted = call i1 @admits(i64 %id)
  br i1 %admitted, label %poll.try, label %idle

poll.try:
  %ran = call i1 @run_one()
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
  br label %check

check:
  %work = call i1 @has_work(i64 %id)
  br i1 %work, label %up, label %block

block:
  %3 = call i32 @pthread_cond_wait(ptr @wake, ptr @mutex)
  br label %check

up:
  %4 = atomicrmw sub ptr @sleepers, i32 1 seq_cst
  %5 = call i32 @pthread_mutex_unlock(ptr @mutex)
  br label %poll
}

define internal i1 @admits(i64 %id) {
  %h = load atomic i64, ptr @helpers monotonic, align 8
  %in = icmp ult i64 %id, %h
  ret i1 %in
}

; Whether the current job admits worker %id and has unclaimed chunks.
define internal i1 @has_work(i64 %id) {
  %s = load atomic i64, ptr @state seq_cst, align 8
  %n = lshr i64 %s, 32
  %c = and i64 %s, 4294967295
  %left = icmp ult i64 %c, %n
  %h = load atomic i64, ptr @helpers seq_cst, align 8
  %in = icmp ult i64 %id, %h
  %both = and i1 %left, %in
  ret i1 %both
}
