//! Moving heavy work off the async worker, which discovery and the resolver share: the join and
//! render over a listing's rows run where they do not hold up the requests queued behind them.

/// Past this many rows, joining and rendering is milliseconds of CPU (a 10,000-instance page: tens).
const HEAVY_ROWS: usize = 500;

/// Runs CPU-bound work over `rows` rows (a listing's join, and what a handler makes of it). Heavy
/// work moves off the async worker thread it would hold (`block_in_place`: the runtime hands that
/// worker's other tasks to a new one), so the cached discoveries and 304s queued behind it are
/// answered meanwhile, time-sliced by the OS, instead of waiting for the whole render. Only on the
/// multi-threaded runtime the handler runs.
pub fn cpu_heavy<T>(rows: usize, work: impl FnOnce() -> T) -> T {
    let multi_threaded = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if rows >= HEAVY_ROWS && multi_threaded {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}
