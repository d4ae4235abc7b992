//! The `handler` binary: the Functions host starts it (custom-handler mode) or you do (standalone).

use service_registry::configuration::Settings;
use service_registry::startup::Application;
use std::process::ExitCode;

// The shipped build is static musl (infra/package.sh), and with musl's own malloc `make bench`
// served cached whole-registry answers at under half the rate it serves with mimalloc. mimalloc's purge delay decides how long freed pages are kept before they
// go back to the OS: 10 ms kept every 10,000-service peak under 85 MiB; 0 held 5-11 MiB less at
// each peak and halved cached throughput; the default, 1000 ms, went over 100 MiB before the
// latest memory cuts. Figures: docs/performance.md, "The shipped build's allocator". The glibc
// build (tests, `make run`, `make bench`'s default) keeps glibc's malloc.
#[cfg(target_env = "musl")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay`: its position in the v3 header's enum, which libmimalloc-sys
/// does not name as a constant.
#[cfg(target_env = "musl")]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Milliseconds mimalloc keeps freed memory before returning it (its default is 1000); set in code
/// so the package needs no MIMALLOC_* variable.
#[cfg(target_env = "musl")]
const PURGE_DELAY_MS: std::ffi::c_long = 10;

fn main() -> ExitCode {
    // Before the runtime starts its threads.
    #[cfg(target_env = "musl")]
    // SAFETY: mi_option_set stores one option value; it has no preconditions.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS)
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
