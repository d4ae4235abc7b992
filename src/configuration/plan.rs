//! The hosting plan (`HEALTH_HOSTING_PLAN`), for what depends on its outbound-connection cap: how
//! many health probes a sweep keeps in flight, how many storage requests the store keeps in flight
//! (`STORAGE_MAX_CONNECTIONS`), and whether the two together fit the plan.
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
//! Storage is one destination, and App Service gives each instance 128 pre-allocated SNAT ports per
//! destination address and port (same page), which bounds the storage connections on every plan.
//! The numbers and their reasoning: docs/performance.md, "Connection limits per plan".

use super::environment::Environment;
use super::ConfigError;

pub const PROBE_CONCURRENCY_VAR: &str = "HEALTH_PROBE_CONCURRENCY";
pub const STORAGE_CONNECTIONS_VAR: &str = "STORAGE_MAX_CONNECTIONS";
const PLAN_VAR: &str = "HEALTH_HOSTING_PLAN";

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
        let Some(text) = env.text(PLAN_VAR) else {
            return Ok(HostingPlan::Consumption);
        };
        let wanted = text.trim().to_ascii_lowercase();
        Self::NAMES
            .iter()
            .find(|(name, _)| *name == wanted)
            .map(|(_, plan)| *plan)
            .ok_or_else(|| ConfigError::Invalid {
                variable: PLAN_VAR.to_owned(),
                reason: format!(
                    "expected one of consumption, flex-consumption, premium, dedicated; got {text:?}"
                ),
            })
    }

    /// Probes in flight unless `HEALTH_PROBE_CONCURRENCY` says otherwise.
    ///
    /// Consumption: 500 of the 600 active connections, which leaves 100 for Table Storage
    /// (`default_storage_connections`, enforced by the store). Flex Consumption
    /// documents no per-instance connection cap that we found, so it gets Consumption's value
    /// until one is measured. Premium and Dedicated: 1,000, well inside the smallest worker's
    /// 1,920 TCP connections with the same headroom for storage.
    pub fn default_probe_concurrency(self) -> u32 {
        match self {
            HostingPlan::Consumption | HostingPlan::FlexConsumption => 500,
            HostingPlan::Premium | HostingPlan::Dedicated => 1_000,
        }
    }

    /// Storage requests in flight at once (and connections kept idle) unless
    /// `STORAGE_MAX_CONNECTIONS` says otherwise: 100 on every plan. On Consumption that is what the
    /// probes leave of the 600 (600 - 500). Elsewhere the cap is not the limit: storage is a single
    /// destination, and its connections past the 128 pre-allocated SNAT ports would draw on ports
    /// that may not come, so 100 stays under those with room for the token endpoint; with Premium's
    /// 1,000 probes that is 1,100 of the smallest worker's 1,920 TCP connections.
    pub fn default_storage_connections(self) -> u32 {
        100
    }

    /// The documented cap on active outbound connections per instance, where there is one.
    pub fn active_connection_cap(self) -> Option<u32> {
        match self {
            HostingPlan::Consumption => Some(600),
            HostingPlan::FlexConsumption | HostingPlan::Premium | HostingPlan::Dedicated => None,
        }
    }

    /// Refuses probes plus storage connections over the plan's documented cap: past it the sandbox
    /// refuses new connections, which a sweep records as unhealthy services and a request as a
    /// storage outage, so it is better said at start-up. Where no cap is documented an explicit
    /// setting wins. The error names both variables, their values and which were defaults.
    pub fn check_connections(
        self,
        env: &Environment<impl Fn(&str) -> Option<String>>,
        probes: usize,
        storage: usize,
    ) -> Result<(), ConfigError> {
        let Some(cap) = self.active_connection_cap() else {
            return Ok(());
        };
        let sum = probes.saturating_add(storage);
        if sum <= cap as usize {
            return Ok(());
        }
        let origin = |variable: &str| match env.text(variable) {
            Some(_) => "set",
            None => "the default",
        };
        let plan = match env.text(PLAN_VAR) {
            Some(_) => "",
            None => " (HEALTH_HOSTING_PLAN is unset, which means consumption)",
        };
        Err(ConfigError::InvalidTogether {
            variables: [PROBE_CONCURRENCY_VAR, STORAGE_CONNECTIONS_VAR],
            reason: format!(
                "{probes} probes ({}) + {storage} storage connections ({}) = {sum}, over the {cap} \
                 active outbound connections a Consumption plan instance may hold{plan}; lower \
                 either, or set HEALTH_HOSTING_PLAN to the plan this runs on",
                origin(PROBE_CONCURRENCY_VAR),
                origin(STORAGE_CONNECTIONS_VAR),
            ),
        })
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

    fn check(
        vars: &'static [(&'static str, &'static str)],
        plan: HostingPlan,
        probes: usize,
        storage: usize,
    ) -> Result<(), ConfigError> {
        let env = Environment::new(|name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        });
        plan.check_connections(&env, probes, storage)
    }

    #[test]
    fn the_defaults_fill_consumption_exactly() {
        let plan = HostingPlan::Consumption;
        assert_eq!(plan.default_storage_connections(), 100);
        assert_eq!(
            plan.default_probe_concurrency() + plan.default_storage_connections(),
            plan.active_connection_cap().unwrap()
        );
        assert_eq!(check(&[], plan, 500, 100), Ok(()));
        assert_eq!(check(&[], plan, 1, 599), Ok(()));
    }

    #[test]
    fn over_consumption_s_cap_names_both_variables_and_which_were_defaults() {
        let e = check(
            &[("HEALTH_PROBE_CONCURRENCY", "550")],
            HostingPlan::Consumption,
            550,
            100,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "HEALTH_PROBE_CONCURRENCY and STORAGE_MAX_CONNECTIONS together are invalid: 550 probes \
             (set) + 100 storage connections (the default) = 650, over the 600 active outbound \
             connections a Consumption plan instance may hold (HEALTH_HOSTING_PLAN is unset, which \
             means consumption); lower either, or set HEALTH_HOSTING_PLAN to the plan this runs on"
        );
        let e = check(
            &[
                ("HEALTH_HOSTING_PLAN", "consumption"),
                ("STORAGE_MAX_CONNECTIONS", "101"),
            ],
            HostingPlan::Consumption,
            500,
            101,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "HEALTH_PROBE_CONCURRENCY and STORAGE_MAX_CONNECTIONS together are invalid: 500 probes \
             (the default) + 101 storage connections (set) = 601, over the 600 active outbound \
             connections a Consumption plan instance may hold; lower either, or set \
             HEALTH_HOSTING_PLAN to the plan this runs on"
        );
    }

    #[test]
    fn where_no_cap_is_documented_an_explicit_setting_wins() {
        for plan in [
            HostingPlan::FlexConsumption,
            HostingPlan::Premium,
            HostingPlan::Dedicated,
        ] {
            assert_eq!(plan.default_storage_connections(), 100);
            assert_eq!(check(&[], plan, 5_000, 1_000), Ok(()), "{plan:?}");
        }
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
