//! The `handler` binary: the Functions host starts it (custom-handler mode) or you do (standalone).

use service_registry::configuration::Settings;
use service_registry::startup::Application;
use std::process::ExitCode;

// The shipped build is static musl (infra/package.sh), and musl's malloc takes one lock for every
// thread: measured under `make bench` it served cached whole-registry answers at 0.4x the glibc
// build's rate. mimalloc gives the throughput back; at its defaults it keeps freed pages for a while
// and peaked above the 100 MiB memory target, so `main` tells it to return them at once. Figures and
// the settings tried: docs/performance.md, "The shipped build's allocator". The glibc build (tests,
// `make run`, `make bench`'s default) keeps glibc's malloc.
#[cfg(target_env = "musl")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (milliseconds before freed memory goes back to the OS; 10 by
/// default): the v3 header's enum position, which libmimalloc-sys does not name as a constant.
#[cfg(target_env = "musl")]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // Before the runtime starts any thread; set in code so the package needs no MIMALLOC_* variable.
    #[cfg(target_env = "musl")]
    // SAFETY: mi_option_set stores one option value; it has no preconditions.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0)
    };
    run()
}

#[tokio::main]
async fn run() -> ExitCode {
    let result = async {
        let settings = Settings::from_env()?;
        service_registry::telemetry::init(&settings.telemetry);
        for notice in &settings.notices {
            tracing::warn!("{notice}");
        }
        Application::build(settings)?.run().await
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One clear line on stderr (which the host records as an error). Config errors name
            // variables, never their values.
            eprintln!("handler: error: {e}");
            ExitCode::from(2)
        }
    }
}
