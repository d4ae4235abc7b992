//! The Functions host's HTTP routing, imitated from the app's own host.json and function.json
//! files, so the tests route a public URL to a function exactly as the real host would, and a
//! change to those files shows up in the tests.
//!
//! The rules, from the host's source (docs/functions-host-protocol.md, "Routes"):
//! - `WebScriptHostHttpRoutesManager.InitializeHttpFunctionRoutes` (Azure/azure-functions-host):
//!   each HTTP-triggered function is mapped with its function.json `route`, or its name when it has
//!   none, under `extensions.http.routePrefix` (default `api`), with its `methods` (all when
//!   absent) as a constraint; a method outside them does not match the route (the host's 404).
//! - `WebJobsRouteBuilder` (Azure/azure-webjobs-sdk-extensions, `src/WebJobs.Extensions.Http/
//!   Routing/`): the template is `prefix + '/' + route`, or the route alone when the prefix is
//!   empty; routes are tried literal segments before parameters, then longer before shorter, then
//!   literals in case-insensitive order.
//! - ASP.NET Core route templates: literal segments match case-insensitively, `{name}` matches one
//!   non-empty segment, `{*name}` the rest of the path (empty included); a trailing slash is
//!   ignored. Route values are the decoded segments.

use serde_json::Value;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    CatchAll(String),
}

/// One HTTP function as the host maps it.
#[derive(Debug, Clone)]
pub struct FunctionRoute {
    pub function: String,
    /// The whole template, prefix included (`api/ServiceRegistrar`, `v1/{*path}`).
    pub template: String,
    /// Lower-case; `None`: every method.
    pub methods: Option<Vec<String>>,
    pub auth_level: String,
    segments: Vec<Segment>,
}

/// What a request resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub function: String,
    pub auth_level: String,
    /// Route values (`Data.req.Params` in an envelope).
    pub params: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct HostRoutes {
    pub prefix: String,
    /// In the order the host tries them.
    pub routes: Vec<FunctionRoute>,
}

/// A function's HTTP trigger as function.json declares it.
pub struct Trigger<'a> {
    pub function: &'a str,
    pub route: Option<&'a str>,
    pub methods: Option<Vec<String>>,
    pub auth_level: &'a str,
}

impl HostRoutes {
    /// The app folder's routes: host.json's prefix and every `*/function.json` with an
    /// `httpTrigger`.
    pub fn load(root: &Path) -> HostRoutes {
        let host: Value =
            serde_json::from_str(&std::fs::read_to_string(root.join("host.json")).unwrap())
                .expect("host.json is JSON");
        let prefix = host["extensions"]["http"]["routePrefix"]
            .as_str()
            .map(str::to_owned);
        let mut configs = Vec::new();
        for entry in std::fs::read_dir(root).unwrap() {
            let dir = entry.unwrap().path();
            let Ok(text) = std::fs::read_to_string(dir.join("function.json")) else {
                continue;
            };
            let config: Value = serde_json::from_str(&text).expect("function.json is JSON");
            let function = dir.file_name().unwrap().to_str().unwrap().to_owned();
            configs.push((function, config));
        }
        let triggers: Vec<Trigger> = configs
            .iter()
            .filter_map(|(function, config)| {
                let trigger = config["bindings"]
                    .as_array()?
                    .iter()
                    .find(|b| b["type"] == "httpTrigger")?;
                Some(Trigger {
                    function,
                    route: trigger["route"].as_str(),
                    methods: trigger["methods"].as_array().map(|m| {
                        m.iter()
                            .map(|m| m.as_str().unwrap().to_ascii_lowercase())
                            .collect()
                    }),
                    auth_level: trigger["authLevel"].as_str().unwrap_or("function"),
                })
            })
            .collect();
        HostRoutes::new(prefix.as_deref(), &triggers)
    }

    /// `prefix`: host.json's `routePrefix` (`None`: absent, so `api`).
    pub fn new(prefix: Option<&str>, triggers: &[Trigger]) -> HostRoutes {
        let prefix = prefix.unwrap_or("api").to_owned();
        let mut routes: Vec<FunctionRoute> = triggers
            .iter()
            .map(|t| {
                let route = match t.route {
                    Some(route) if !route.is_empty() => route.to_owned(),
                    _ => t.function.to_owned(),
                };
                let template = if prefix.is_empty() {
                    route
                } else {
                    format!("{prefix}/{route}")
                };
                FunctionRoute {
                    function: t.function.to_owned(),
                    segments: parse_template(&template),
                    template,
                    methods: t.methods.clone(),
                    auth_level: t.auth_level.to_owned(),
                }
            })
            .collect();
        routes.sort_by(|x, y| precedence(&x.segments, &y.segments));
        HostRoutes { prefix, routes }
    }

    /// The function `method path` reaches, or `None`: the host's 404. `path` is the raw path
    /// (percent-encoded), without the query.
    pub fn resolve(&self, method: &str, path: &str) -> Option<RouteMatch> {
        let path = path.strip_prefix('/').unwrap_or(path);
        let path = path.strip_suffix('/').unwrap_or(path);
        let parts: Vec<&str> = if path.is_empty() {
            vec![]
        } else {
            path.split('/').collect()
        };
        let method = method.to_ascii_lowercase();
        self.routes.iter().find_map(|route| {
            if let Some(methods) = &route.methods {
                if !methods.contains(&method) {
                    return None;
                }
            }
            let params = match_segments(&route.segments, &parts)?;
            Some(RouteMatch {
                function: route.function.clone(),
                auth_level: route.auth_level.clone(),
                params,
            })
        })
    }
}

fn parse_template(template: &str) -> Vec<Segment> {
    template
        .split('/')
        .filter(|s| !s.is_empty())
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => match name.strip_prefix('*') {
                    Some(name) => Segment::CatchAll(name.trim_start_matches('*').to_owned()),
                    None => Segment::Param(name.split([':', '?', '=']).next().unwrap().to_owned()),
                },
                None => Segment::Literal(s.to_owned()),
            },
        )
        .collect()
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

fn match_segments(segments: &[Segment], parts: &[&str]) -> Option<BTreeMap<String, String>> {
    let mut params = BTreeMap::new();
    for (i, segment) in segments.iter().enumerate() {
        match segment {
            Segment::CatchAll(name) => {
                let rest = parts.get(i..).unwrap_or_default().join("/");
                if !rest.is_empty() {
                    params.insert(name.clone(), decode(&rest));
                }
                return Some(params);
            }
            Segment::Literal(text) => {
                if !parts.get(i)?.eq_ignore_ascii_case(text) {
                    return None;
                }
            }
            Segment::Param(name) => {
                let part = parts.get(i).filter(|p| !p.is_empty())?;
                params.insert(name.clone(), decode(part));
            }
        }
    }
    (parts.len() == segments.len()).then_some(params)
}

/// `WebJobsRouteBuilder.RouteComparison`: literals before parameters, segment by segment (literals
/// in case-insensitive order), and a longer template before its prefix.
fn precedence(x: &[Segment], y: &[Segment]) -> Ordering {
    for (i, xs) in x.iter().enumerate() {
        let Some(ys) = y.get(i) else {
            return Ordering::Less;
        };
        match (xs, ys) {
            (Segment::Literal(_), Segment::Param(_) | Segment::CatchAll(_)) => {
                return Ordering::Less
            }
            (Segment::Param(_) | Segment::CatchAll(_), Segment::Literal(_)) => {
                return Ordering::Greater
            }
            (Segment::Literal(a), Segment::Literal(b)) => {
                let order = a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase());
                if order != Ordering::Equal {
                    return order;
                }
            }
            _ => {}
        }
    }
    if y.len() > x.len() {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

/// A queue-triggered function as function.json declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueTrigger {
    pub function: String,
    /// The binding's `name`: the key of its message in `Data`.
    pub name: String,
    /// `queueName` as written (`%SETTING%` is resolved by the host from app settings).
    pub queue_name: String,
    pub connection: Option<String>,
}

impl QueueTrigger {
    /// The queue's name, `%NAME%` resolved through `settings` as the host's name resolver does.
    pub fn queue(&self, settings: &[(&str, &str)]) -> String {
        match self
            .queue_name
            .strip_prefix('%')
            .and_then(|n| n.strip_suffix('%'))
        {
            Some(name) => settings
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
                .unwrap_or_else(|| panic!("app setting {name} is not set")),
            None => self.queue_name.clone(),
        }
    }
}

/// Every `*/function.json` with a `queueTrigger`, in folder order.
pub fn queue_triggers(root: &Path) -> Vec<QueueTrigger> {
    let mut triggers = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let Ok(text) = std::fs::read_to_string(dir.join("function.json")) else {
            continue;
        };
        let config: Value = serde_json::from_str(&text).expect("function.json is JSON");
        let Some(binding) = config["bindings"]
            .as_array()
            .and_then(|b| b.iter().find(|b| b["type"] == "queueTrigger"))
        else {
            continue;
        };
        triggers.push(QueueTrigger {
            function: dir.file_name().unwrap().to_str().unwrap().to_owned(),
            name: binding["name"].as_str().expect("a trigger name").to_owned(),
            queue_name: binding["queueName"]
                .as_str()
                .expect("a queueName")
                .to_owned(),
            connection: binding["connection"].as_str().map(str::to_owned),
        });
    }
    triggers
}
