#!/usr/bin/env bash
# Provisions the service registry in Azure and deploys the code as ONE zip.
#
# Usage: infra/deploy.sh <resource-group> [location]
#   location defaults to the resource group's location when the group exists, else westeurope.
# Environment (optional):
#   NAME_PREFIX   namePrefix for infra/main.bicep (default: svcreg)
#
# Steps: az group create -> az deployment group create (infra/main.bicep) -> read the outputs
# -> infra/package.sh -> ONE az functionapp deployment source config-zip.
# It never prints connection strings or keys: the template has no secret outputs and every az
# call that could return settings runs with --output none or a narrow --query.
set -euo pipefail

usage() {
    echo "usage: infra/deploy.sh <resource-group> [location]" >&2
    exit 2
}
die() {
    echo "deploy.sh: error: $*" >&2
    exit 1
}

[[ $# -ge 1 && $# -le 2 ]] || usage
resource_group="$1"
[[ -n "${resource_group}" ]] || usage

script_dir="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd -- "${script_dir}/.." && pwd)"
cd "${repo_root}"

template="${repo_root}/infra/main.bicep"
zip_path="${repo_root}/dist/registry-app.zip"
name_prefix="${NAME_PREFIX:-svcreg}"

command -v az >/dev/null 2>&1 || die "the Azure CLI (az) is not installed"
az account show --output none 2>/dev/null || die "not logged in: run 'az login' (and 'az account set --subscription <id>')"
subscription_name="$(az account show --query name --output tsv)"

if [[ $# -eq 2 ]]; then
    location="$2"
elif existing="$(az group show --name "${resource_group}" --query location --output tsv 2>/dev/null)" && [[ -n "${existing}" ]]; then
    location="${existing}"
else
    location="westeurope"
fi

echo "==> subscription: ${subscription_name}"
echo "==> resource group: ${resource_group} (${location}), name prefix: ${name_prefix}"

# --- 1. resource group -------------------------------------------------------------------------
az group create --name "${resource_group}" --location "${location}" --output none

# --- 2. infrastructure ---------------------------------------------------------------------------
deployment_name="registry-$(date -u +%Y%m%d%H%M%S)"
echo "==> az deployment group create ${deployment_name} (infra/main.bicep)"
az deployment group create \
    --resource-group "${resource_group}" \
    --name "${deployment_name}" \
    --template-file "${template}" \
    --parameters location="${location}" namePrefix="${name_prefix}" \
    --output none

# --- 3. outputs (names only; the template outputs no secrets) ------------------------------------
output() {
    az deployment group show \
        --resource-group "${resource_group}" \
        --name "${deployment_name}" \
        --query "properties.outputs.$1.value" \
        --output tsv
}
function_app="$(output functionAppName)"
host_name="$(output defaultHostName)"
storage_account="$(output storageAccountName)"
[[ -n "${function_app}" && -n "${host_name}" ]] || die "the deployment returned no function app name or host name"

echo "==> function app: ${function_app}"
echo "==> host name: ${host_name}"
echo "==> storage account: ${storage_account} (tables ServiceRegistry, HealthStatus)"

# --- 4. package: ONE zip with host.json, the function folders and the handler -------------
"${script_dir}/package.sh"
[[ -f "${zip_path}" ]] || die "package.sh did not produce ${zip_path}"

# --- 5. deploy the single zip (zip deploy replaces the whole app) --------------------------------
echo "==> az functionapp deployment source config-zip (${zip_path#"${repo_root}"/})"
az functionapp deployment source config-zip \
    --resource-group "${resource_group}" \
    --name "${function_app}" \
    --src "${zip_path}" \
    --output none

# Function names only (no keys). The host may need a minute after deployment to index them.
echo "==> functions the host reports (may be empty for a minute while the host syncs triggers):"
az functionapp function list \
    --resource-group "${resource_group}" \
    --name "${function_app}" \
    --query "[].name" \
    --output tsv || echo "   (could not list functions yet; retry later)"

cat <<EOF

Deployed. The HTTP functions use authLevel "function": send a function key as the query
parameter 'code' or the header 'x-functions-key'. This script does not print keys; fetch one with
  az functionapp function keys list -g ${resource_group} -n ${function_app} --function-name ServiceDiscovery --query default -o tsv
  az functionapp keys list -g ${resource_group} -n ${function_app}      (host keys: work for every function)

Discovery:  GET  https://${host_name}/api/ServiceDiscovery?serviceType=<type>&healthyOnly=true   (+ code=<key> or x-functions-key)
Register:   POST https://${host_name}/api/ServiceRegistrar   (JSON body; + code=<key> or x-functions-key)
Health:     timer HealthMonitor, every 5 minutes (0 */5 * * * *); results in the HealthStatus table
EOF
