#!/usr/bin/env bash
# One command from nothing to a running, smoke-tested service registry in Azure:
#   1. az group create + az deployment group create (infra/main.bicep)
#   2. make package: ONE zip with host.json, every function folder and the handler
#   3. az functionapp deployment source config-zip: deploys that zip
#   4. a smoke test through the public function URLs: register, discover, resolve and deregister a
#      throwaway service, with a function key fetched at run time and never printed
#   5. prints how to tear it all down
#
# Usage: infra/deploy.sh [options] <resource-group> [location]
#   location defaults to the group's when it exists, else westeurope.
# Options:
#   --plan FlexConsumption|Consumption   hosting plan (default FlexConsumption; Consumption = Linux Y1,
#                                        for existing apps only: it retires on 2028-09-30)
#   --prefix NAME                        namePrefix for resource names (default svcreg)
#   --identity SystemAssigned|UserAssigned   (default SystemAssigned)
#   --max-instances N                    Flex: scale-out limit, 40-1000 (default 40)
#   --memory 512|2048|4096               Flex: instance memory in MB (default 512)
#   --setting NAME=VALUE                 a handler setting (README, Configuration); repeatable
#   --with-recipe-topology               also the web app, Azure SQL, Redis and Service Connector links
#   --sql-admin-object-id ID, --sql-admin-login NAME
#                                        with --with-recipe-topology; default: the signed-in user
#   --no-smoke                           skip the smoke test
#
# Nothing secret is printed: the template has no secret outputs, every az call that could return
# settings or keys runs with --output none or a narrow --query, and the function key travels to
# curl in a mode-0600 header file, never on a command line.
#
# This script has never run here (no Azure access where it was written): it is checked with
# `bash -n` and shellcheck only. See infra/README.md, "What has never run".
set -euo pipefail

die() {
    echo "deploy.sh: error: $*" >&2
    exit 1
}
usage() {
    sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2
    exit 2
}

# The handler settings --setting accepts: what the handler reads and the template leaves to the
# operator. tests/integration/deploy_contract.rs checks this list against src/configuration.rs.
# handler-settings:begin
handler_settings=(
    DISCOVERY_CACHE_TTL_MS
    DEREGISTER_EXPIRED_AFTER_SECONDS
    HEALTH_PROBE_TIMEOUT_MS
    HEALTH_PROBE_CONCURRENCY
    HEALTH_HOSTING_PLAN
    HEALTH_SWEEP_DEADLINE_MS
    HEALTH_PROBE_JITTER_MS
    HEALTH_FAILURES_TO_UNHEALTHY
    HEALTH_SUCCESSES_TO_HEALTHY
    HEALTH_CIRCUIT_BACKOFF_MS
    HEALTH_CIRCUIT_MAX_BACKOFF_MS
    HEALTH_ALLOW_LOOPBACK
    HEALTH_ALLOW_CIDRS
    HEALTH_DENY_CIDRS
    STORAGE_TIMEOUT_MS
    STORAGE_MAX_CONNECTIONS
    SERVER_HEADER_TIMEOUT_MS
    SERVER_BODY_TIMEOUT_MS
    SERVER_MAX_CONNECTIONS
    RUST_LOG
    REGISTRY_API_KEYS
    REGISTRY_ENTRA_TENANT_ID
    REGISTRY_ENTRA_METADATA_URL
    REGISTRY_ENTRA_AUDIENCE
    REGISTRY_ENTRA_ISSUER
    REGISTRY_ENTRA_KEY_REFRESH_MS
    REGISTRY_TRUST_CLIENT_PRINCIPAL
    REGISTRY_ALLOWED_ORIGINS
    AZURE_RESOURCE_MANAGER_ENDPOINT
    AZURE_RESOURCE_MANAGER_AUDIENCE
    SERVICE_CONNECTOR_SYNC_DEADLINE_MS
    SERVICE_CONNECTOR_SYNC_REQUEST_TIMEOUT_MS
    SERVICE_CONNECTOR_SYNC_MAX_PAGES
    SERVICE_CONNECTOR_SYNC_MAX_ITEMS
    SERVICE_CONNECTOR_SYNC_MAX_RETRY_AFTER_MS
    SERVICE_CONNECTOR_SELF_REGISTER
    CONSUL_DATACENTER
    CONSUL_UNCHECKED_STATUS
    CONSUL_MAX_HOLD_SECONDS
    CONSUL_SERVICE_TYPE
    HEALTH_EVENTS_SOURCE
    HEALTH_EVENTS_PUBLISH_TIMEOUT_MS
    HEALTH_EVENTS_OUTBOX_MAX
    SWEEP_WINDOW_SECONDS
    SWEEP_SHARD_SIZE
)
# handler-settings:end

plan="FlexConsumption"
name_prefix="svcreg"
identity="SystemAssigned"
max_instances="40"
memory_mb="512"
topology="false"
sql_admin_object_id=""
sql_admin_login=""
smoke="true"
settings=()
positional=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --plan) plan="${2:?--plan needs a value}"; shift 2 ;;
        --prefix) name_prefix="${2:?--prefix needs a value}"; shift 2 ;;
        --identity) identity="${2:?--identity needs a value}"; shift 2 ;;
        --max-instances) max_instances="${2:?--max-instances needs a value}"; shift 2 ;;
        --memory) memory_mb="${2:?--memory needs a value}"; shift 2 ;;
        --setting) settings+=("${2:?--setting needs NAME=VALUE}"); shift 2 ;;
        --with-recipe-topology) topology="true"; shift ;;
        --sql-admin-object-id) sql_admin_object_id="${2:?}"; shift 2 ;;
        --sql-admin-login) sql_admin_login="${2:?}"; shift 2 ;;
        --no-smoke) smoke="false"; shift ;;
        -h | --help) usage ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) positional+=("$1"); shift ;;
    esac
done
[[ ${#positional[@]} -ge 1 && ${#positional[@]} -le 2 ]] || usage
resource_group="${positional[0]}"
[[ -n "${resource_group}" ]] || usage

case "${plan}" in FlexConsumption | Consumption) ;; *) die "--plan must be FlexConsumption or Consumption" ;; esac
case "${identity}" in SystemAssigned | UserAssigned) ;; *) die "--identity must be SystemAssigned or UserAssigned" ;; esac
if ! [[ "${max_instances}" =~ ^[0-9]+$ ]] || ((max_instances < 40 || max_instances > 1000)); then
    die "--max-instances must be 40 to 1000"
fi
case "${memory_mb}" in 512 | 2048 | 4096) ;; *) die "--memory must be 512, 2048 or 4096" ;; esac
for setting in "${settings[@]}"; do
    name="${setting%%=*}"
    [[ "${setting}" == *=* && -n "${name}" ]] || die "--setting ${setting}: expected NAME=VALUE"
    known="false"
    for allowed in "${handler_settings[@]}"; do [[ "${name}" == "${allowed}" ]] && known="true"; done
    [[ "${known}" == "true" ]] || die "--setting ${name}: not a handler setting this script passes on (one of: ${handler_settings[*]})"
done

script_dir="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd -- "${script_dir}/.." && pwd)"
cd "${repo_root}"
zip_path="${repo_root}/dist/registry-app.zip"

for tool in az curl python3; do
    command -v "${tool}" >/dev/null 2>&1 || die "${tool} is not installed"
done
az account show --output none 2>/dev/null || die "not logged in: run 'az login' (and 'az account set --subscription <id>')"
subscription_name="$(az account show --query name --output tsv)"

if [[ ${#positional[@]} -eq 2 ]]; then
    location="${positional[1]}"
elif existing="$(az group show --name "${resource_group}" --query location --output tsv 2>/dev/null)" && [[ -n "${existing}" ]]; then
    location="${existing}"
else
    location="westeurope"
fi

if [[ "${topology}" == "true" && -z "${sql_admin_object_id}" ]]; then
    # The signed-in user becomes the Entra ID administrator of the SQL server: no SQL password exists.
    sql_admin_object_id="$(az ad signed-in-user show --query id --output tsv)" ||
        die "cannot read the signed-in user; pass --sql-admin-object-id and --sql-admin-login"
    sql_admin_login="$(az ad signed-in-user show --query userPrincipalName --output tsv)"
fi

scratch="$(mktemp -d "${TMPDIR:-/tmp}/registry-deploy.XXXXXX")"
trap 'rm -rf -- "${scratch}"' EXIT
chmod 0700 "${scratch}"

echo "==> subscription: ${subscription_name}"
echo "==> resource group: ${resource_group} (${location}), plan ${plan}, identity ${identity}, prefix ${name_prefix}"

# --- 1. provision -------------------------------------------------------------------------------
# Parameters go through a JSON file that python3 writes, so no value needs shell quoting.
python3 - "${scratch}/parameters.json" "${location}" "${name_prefix}" "${plan}" "${identity}" \
    "${max_instances}" "${memory_mb}" "${topology}" "${sql_admin_object_id}" "${sql_admin_login}" \
    "${settings[@]}" <<'PY'
import json
import sys

out, location, prefix, plan, identity, max_instances, memory, topology, sql_id, sql_login, *settings = sys.argv[1:]
values = {
    "location": location,
    "namePrefix": prefix,
    "plan": plan,
    "identityType": identity,
    "maximumInstanceCount": int(max_instances),
    "instanceMemoryMB": int(memory),
    "handlerSettings": dict(s.split("=", 1) for s in settings),
    "deployRecipeTopology": topology == "true",
    "sqlAdminObjectId": sql_id,
    "sqlAdminLogin": sql_login,
}
document = {
    "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
    "contentVersion": "1.0.0.0",
    "parameters": {name: {"value": value} for name, value in values.items()},
}
with open(out, "w", encoding="utf-8") as f:
    json.dump(document, f, indent=2)
PY

az group create --name "${resource_group}" --location "${location}" --output none
deployment_name="registry-$(date -u +%Y%m%d%H%M%S)"
echo "==> az deployment group create ${deployment_name} (infra/main.bicep)"
az deployment group create \
    --resource-group "${resource_group}" \
    --name "${deployment_name}" \
    --template-file infra/main.bicep \
    --parameters "@${scratch}/parameters.json" \
    --output none

output() {
    az deployment group show --resource-group "${resource_group}" --name "${deployment_name}" \
        --query "properties.outputs.$1.value" --output tsv
}
function_app="$(output functionAppName)"
host_name="$(output defaultHostName)"
storage_account="$(output storageAccountName)"
[[ -n "${function_app}" && -n "${host_name}" ]] || die "the deployment returned no function app name or host name"
echo "==> function app: ${function_app} (https://${host_name})"
echo "==> storage account: ${storage_account} (tables ServiceRegistry, HealthStatus, RegistryState)"

# --- 2. package ---------------------------------------------------------------------------------
if command -v make >/dev/null 2>&1; then
    make --no-print-directory package
else
    "${script_dir}/package.sh"
fi
[[ -f "${zip_path}" ]] || die "packaging produced no ${zip_path}"

# --- 3. deploy the one zip --------------------------------------------------------------------------
# The same command for both plans: on Flex Consumption the CLI publishes through the app's one-deploy
# endpoint (the platform then writes the package to the deployment container with the app's
# identity); on Linux Consumption it uploads to host storage and sets WEBSITE_RUN_FROM_PACKAGE.
# Either way the caller authenticates with its Entra ID token, so no publishing credentials (basic
# auth) need to exist. A role assigned a moment ago can take minutes to apply, so a refused deploy
# is retried until a deadline.
deadline=$((SECONDS + 600))
delay=15
until az functionapp deployment source config-zip --resource-group "${resource_group}" \
    --name "${function_app}" --src "${zip_path}" --output none; do
    ((SECONDS + delay < deadline)) || die "zip deploy kept failing for 10 minutes"
    echo "   deploy refused (role assignments may still be propagating); again in ${delay}s"
    sleep "${delay}"
    delay=$((delay < 60 ? delay * 2 : 60))
done
echo "==> deployed $(basename "${zip_path}")"

# --- 4. smoke test ----------------------------------------------------------------------------------
smoke_test() {
    local key="" header="${scratch}/key-header" base="https://${host_name}/api"
    local name status body
    name="smoke-$(date -u +%H%M%S)-${RANDOM}"

    # The host key (functionKeys.default) opens every function; it exists once the host has started.
    local until_time=$((SECONDS + 300))
    while [[ -z "${key}" ]]; do
        key="$(az functionapp keys list --resource-group "${resource_group}" --name "${function_app}" \
            --query functionKeys.default --output tsv 2>/dev/null || true)"
        [[ -n "${key}" ]] && break
        ((SECONDS < until_time)) || { echo "smoke: no function key after 5 minutes" >&2; return 1; }
        sleep 10
    done
    (umask 077 && printf 'x-functions-key: %s\n' "${key}" >"${header}")
    key=""

    # call METHOD PATH [BODY]: sets status and body; the key comes from the header file.
    call() {
        local args=(--silent --show-error --max-time 30 --header "@${header}" --output "${scratch}/body"
            --write-out '%{http_code}' --request "$1")
        [[ $# -ge 3 ]] && args+=(--header 'content-type: application/json' --data "$3")
        status="$(curl "${args[@]}" "${base}/$2" || echo 000)"
        body="$(cat "${scratch}/body" 2>/dev/null || true)"
    }
    expect() {
        [[ "${status}" == "$1" ]] || { echo "smoke: $2: HTTP ${status}: ${body}" >&2; return 1; }
        echo "   ok  $2 (HTTP ${status})"
    }
    json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1" <<<"${body}"; }

    # A cold start (and the first key sync) can take a while: poll until discovery answers.
    until_time=$((SECONDS + 300))
    while call GET "ServiceDiscovery?serviceType=smoke" && [[ "${status}" != "200" ]]; do
        ((SECONDS < until_time)) || { echo "smoke: discovery never answered 200 (last: ${status} ${body})" >&2; return 1; }
        sleep 10
    done

    call POST ServiceRegistrar "{\"serviceName\":\"${name}\",\"serviceType\":\"smoke\",\"endpoint\":\"https://${host_name}/\",\"ttlSeconds\":600}"
    expect 200 "register smoke:${name}" || return 1
    call GET "ServiceDiscovery?serviceType=smoke&serviceName=${name}"
    expect 200 "discover smoke:${name}" || return 1
    [[ "$(json_field count)" == "1" ]] || { echo "smoke: discovery did not list ${name}: ${body}" >&2; return 1; }
    call GET "ServiceResolver?serviceType=smoke&serviceName=${name}"
    expect 200 "resolve smoke:${name}" || return 1
    call DELETE "ServiceRegistrar?serviceType=smoke&serviceName=${name}"
    expect 200 "deregister smoke:${name}" || return 1
    rm -f -- "${header}"
}

smoke_status=0
if [[ "${smoke}" == "true" ]]; then
    echo "==> smoke test through https://${host_name}/api (function key fetched, not printed)"
    smoke_test || smoke_status=$?
fi

# --- 5. what now --------------------------------------------------------------------------------------
cat <<EOF

Function app: https://${host_name}/api/{ServiceRegistrar,ServiceDiscovery,ServiceHeartbeat,ServiceResolver,Sweep,openapi.json}
  (authLevel function: send a key as the header x-functions-key; fetch one when you need it with
   az functionapp keys list -g ${resource_group} -n ${function_app} --query functionKeys.default -o tsv)
Health sweep: timer HealthMonitor every 5 minutes; results in the HealthStatus table of ${storage_account},
  the last sweep's summary at /api/Sweep.
Logs: Application Insights in ${resource_group} (JSON lines from the handler).

Tear down everything this created (the whole resource group):
  az group delete --name ${resource_group} --yes --no-wait
EOF
if [[ "${topology}" == "true" ]]; then
    web_app="$(output webAppName)"
    sql_server="$(output sqlServerName)"
    sql_database="$(output sqlDatabaseName)"
    cat <<EOF

Recipe topology: web app ${web_app}, SQL ${sql_server}/${sql_database}, Redis, Service Connector links
(az webapp connection list -g ${resource_group} -n ${web_app} -o table).
The web app's identity still needs a user in the database, created once by the Entra ID admin:
  CREATE USER [${web_app}] FROM EXTERNAL PROVIDER; ALTER ROLE db_datareader ADD MEMBER [${web_app}];
  ALTER ROLE db_datawriter ADD MEMBER [${web_app}];
EOF
fi
if [[ "${smoke_status}" -ne 0 ]]; then
    die "the smoke test failed (above); the resources are still there"
fi
