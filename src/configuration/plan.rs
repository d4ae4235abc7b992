//! The hosting plan (`HEALTH_HOSTING_PLAN`), for the one default that depends on it: how many
//! health probes a sweep keeps in flight.
//!
//! Every probe is an outbound connection, and the plans cap those differently. On the Consumption
//! plan the sandbox allows 600 active (1,200 in all) outbound connections per instance, storage
//! included ("Manage connections in Azure Functions",
//! https://learn.microsoft.com/azure/azure-functions/manage-connections, and the service-limits
//! table, https://learn.microsoft.com/azure/azure-functions/functions-scale#service-limits);
//! Premium and Dedicated list no Functions-level cap, but App Service's workers still limit TCP
//! connections by size, 1,920 on the smallest ("Troubleshooting intermittent outbound connection
//! errors in Azure App Service",
//! https://learn.microsoft.com/azure/app-service/troubleshoot-intermittent-outbound-connection-errors).
//! The numbers and their reasoning: docs/performance.md, "The sweep".

use super::environment::Environment;
use super::ConfigError;

/// Where the handler runs. Unset means Consumption: the smallest cap is the safe default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostingPlan {
    Consumption,
    FlexConsumption,
    Premium,
    Dedicated,
}

impl HostingPlan {
    const NAMES: [(&'static str, HostingPlan); 4] = [
        ("consumption", HostingPlan::Consumption),
        ("flex-consumption", HostingPlan::FlexConsumption),
        ("premium", HostingPlan::Premium),
        ("dedicated", HostingPlan::Dedicated),
    ];

    pub fn read(env: &Environment<impl Fn(&str) -> Option<String>>) -> Result<Self, ConfigError> {
        let Some(text) = env.text("HEALTH_HOSTING_PLAN") else {
            return Ok(HostingPlan::Consumption);
        };
        let wanted = text.trim().to_ascii_lowercase();
        Self::NAMES
            .iter()
            .find(|(name, _)| *name == wanted)
            .map(|(_, plan)| *plan)
            .ok_or_else(|| ConfigError::Invalid {
                variable: "HEALTH_HOSTING_PLAN".to_owned(),
                reason: format!(
                    "expected one of consumption, flex-consumption, premium, dedicated; got {text:?}"
                ),
            })
    }

    /// Probes in flight unless `HEALTH_PROBE_CONCURRENCY` says otherwise.
    ///
    /// Consumption: 500 of the 600 active connections, which leaves 100 for Table Storage (the
    /// store keeps up to 64 idle, plus the requests being answered meanwhile). Flex Consumption
    /// documents no per-instance connection cap that we found, so it gets Consumption's value
    /// until one is measured. Premium and Dedicated: 1,000, well inside the smallest worker's
    /// 1,920 TCP connections with the same headroom for storage.
    pub fn default_probe_concurrency(self) -> u32 {
        match self {
            HostingPlan::Consumption | HostingPlan::FlexConsumption => 500,
            HostingPlan::Premium | HostingPlan::Dedicated => 1_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(value: Option<&'static str>) -> Result<HostingPlan, ConfigError> {
        HostingPlan::read(&Environment::new(move |name: &str| {
            (name == "HEALTH_HOSTING_PLAN")
                .then(|| value.map(str::to_owned))
                .flatten()
        }))
    }

    #[test]
    fn unset_or_blank_is_consumption_the_smallest_cap() {
        assert_eq!(plan(None).unwrap(), HostingPlan::Consumption);
        assert_eq!(plan(Some(" ")).unwrap(), HostingPlan::Consumption);
        assert_eq!(HostingPlan::Consumption.default_probe_concurrency(), 500);
    }

    #[test]
    fn each_plan_by_name_in_any_case() {
        assert_eq!(
            plan(Some("Flex-Consumption")).unwrap(),
            HostingPlan::FlexConsumption
        );
        assert_eq!(plan(Some("PREMIUM")).unwrap(), HostingPlan::Premium);
        assert_eq!(plan(Some("dedicated")).unwrap(), HostingPlan::Dedicated);
        assert_eq!(HostingPlan::Premium.default_probe_concurrency(), 1_000);
        assert_eq!(
            HostingPlan::FlexConsumption.default_probe_concurrency(),
            500
        );
    }

    #[test]
    fn an_unknown_plan_is_named_with_the_choices() {
        match plan(Some("elastic")).unwrap_err() {
            ConfigError::Invalid { variable, reason } => {
                assert_eq!(variable, "HEALTH_HOSTING_PLAN");
                assert_eq!(
                    reason,
                    "expected one of consumption, flex-consumption, premium, dedicated; got \"elastic\""
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
