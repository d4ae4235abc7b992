//! The `handler` binary: the Functions host starts it (custom-handler mode) or you do (standalone).

use service_registry::configuration::Settings;
use service_registry::startup::Application;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
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
