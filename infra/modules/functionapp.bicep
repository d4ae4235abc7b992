// The hosting plan and the function app that runs `handler` as a custom handler.
//
// Flex Consumption (FC1, the default): the runtime, the deployment container and the scale limits
// live in `functionAppConfig`, and the settings Flex deprecates (FUNCTIONS_WORKER_RUNTIME,
// FUNCTIONS_EXTENSION_VERSION, WEBSITE_CONTENT*, WEBSITE_RUN_FROM_PACKAGE) are not set. Host
// storage, deployment, the tables and telemetry all use the app's managed identity: no key, no
// connection string with a secret.
//
// Linux Consumption (Y1): kept for existing apps only; it retires on 2028-09-30. Its content share
// and zip deploy need an account-key connection string, so only there does a key reach the app
// settings; the handler still reaches the tables with the managed identity.
//
// The app settings are the `var *AppSettings` objects below. tests/integration/deploy_contract.rs
// reads them and fails when one is not a setting the handler or the host reads.

param location string
param name string
param planName string

@allowed([
  'FlexConsumption'
  'Consumption'
])
param plan string

@description('Resource id of the user-assigned identity; empty: the system-assigned identity.')
param userAssignedIdentityId string
param userAssignedClientId string

param storageAccountName string
param blobEndpoint string
param tableEndpoint string
param queueEndpoint string
@description('The fanned-out sweep\'s shard queue (SWEEP_QUEUE), which ProbeShard/function.json listens on.')
param sweepQueueName string
param deploymentContainerName string
param registryTableName string
param healthTableName string
param stateTableName string
param appInsightsName string

param maximumInstanceCount int
param instanceMemoryMB int

@description('Extra handler settings (names the handler reads; infra/deploy.sh checks them).')
param handlerSettings object

@description('Resource IDs whose Service Connector linkers the handler syncs, comma-separated; empty: no sync.')
param connectorSyncSources string = ''

var isFlex = plan == 'FlexConsumption'
var isUserAssigned = !empty(userAssignedIdentityId)

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// Read by the handler (src/configuration.rs). The table endpoint with no connection string means
// managed identity: the same setting Service Connector writes for a system-identity connection.
var handlerAppSettings = {
  AZURE_STORAGETABLE_RESOURCEENDPOINT: tableEndpoint
  // The same account's queues, with the same identity: the sweep's shards. SWEEP_QUEUE also
  // names the queue the ProbeShard trigger listens on (`%SWEEP_QUEUE%` in its function.json).
  AZURE_STORAGEQUEUE_RESOURCEENDPOINT: queueEndpoint
  SWEEP_QUEUE: sweepQueueName
  REGISTRY_TABLE: registryTableName
  HEALTH_TABLE: healthTableName
  STATE_TABLE: stateTableName
  RUST_LOG_FORMAT: 'json'
}

// The Service Connector sync (docs/arm-sync.md), with the recipe's topology only: the apps whose
// linkers become registrations. ARM's endpoint and audience keep their public-cloud defaults.
var connectorSyncAppSettings = {
  SERVICE_CONNECTOR_SYNC_SOURCES: connectorSyncSources
}

// Telemetry goes to Application Insights through the host, authenticated with Entra ID.
var telemetryAppSettings = {
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: isUserAssigned ? 'ClientId=${userAssignedClientId};Authorization=AAD' : 'Authorization=AAD'
}

// Flex: identity-based host storage (blobs for the timer's lease and keys, queues).
var flexAppSettings = {
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
}

// Which user-assigned identity the host and the handler take tokens for.
var userAssignedAppSettings = {
  AzureWebJobsStorage__clientId: userAssignedClientId
  AZURE_STORAGETABLE_CLIENTID: userAssignedClientId
}

// Linux Consumption only: the content share (Azure Files) has no identity option.
var keyConnectionString = 'DefaultEndpointsProtocol=https;AccountName=${storageAccount.name};AccountKey=${storageAccount.listKeys().keys[0].value};EndpointSuffix=${environment().suffixes.storage}'
var consumptionAppSettings = {
  FUNCTIONS_EXTENSION_VERSION: '~4'
  FUNCTIONS_WORKER_RUNTIME: 'custom'
  AzureWebJobsStorage: keyConnectionString
  WEBSITE_CONTENTAZUREFILECONNECTIONSTRING: keyConnectionString
  WEBSITE_CONTENTSHARE: toLower(name)
}

// The caller's handler settings first, so the template's own always win.
var appSettings = union(
  handlerSettings,
  handlerAppSettings,
  telemetryAppSettings,
  isFlex ? flexAppSettings : consumptionAppSettings,
  isUserAssigned ? userAssignedAppSettings : {},
  empty(connectorSyncSources) ? {} : connectorSyncAppSettings
)

resource hostingPlan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225:a Consumption or Flex Consumption plan has no zone-redundancy setting here; the platform places its instances
  name: planName
  location: location
  kind: isFlex ? 'functionapp' : 'linux'
  sku: isFlex ? {
    tier: 'FlexConsumption'
    name: 'FC1'
  } : {
    tier: 'Dynamic'
    name: 'Y1'
  }
  properties: {
    reserved: true
  }
}

var flexConfig = {
  deployment: {
    storage: {
      type: 'blobContainer'
      value: '${blobEndpoint}${deploymentContainerName}'
      authentication: isUserAssigned ? {
        type: 'UserAssignedIdentity'
        userAssignedIdentityResourceId: userAssignedIdentityId
      } : {
        type: 'SystemAssignedIdentity'
      }
    }
  }
  // maximumInstanceCount is the cost ceiling for the whole app. Per-function scaling is Flex's
  // own: ProbeShard (a queue trigger) scales on instances of its own, apart from the HTTP group
  // that serves discovery, so probing never slows discovery. No instance of it is kept ready:
  // shards wait in the queue for at most one scale-out step.
  scaleAndConcurrency: {
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    alwaysReady: [
      {
        name: 'function:ProbeShard'
        instanceCount: 0
      }
    ]
  }
  // What the platform's stack list names for custom handlers on FC1 (infra/README.md, sources).
  runtime: {
    name: 'custom'
    version: '1.0'
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_16:identity is always set (system- or user-assigned, chosen by a condition checkov cannot evaluate); App Service Authentication is not used because the host checks function keys and Flex Consumption does not support it
  // checkov:skip=CKV_AZURE_71:a managed identity is always set; the check cannot evaluate the condition that picks system- or user-assigned
  // checkov:skip=CKV_AZURE_222:the registry is a public API authenticated with function keys; no virtual network in this template, so callers and the platform reach it over the public endpoint
  // checkov:skip=CKV_AZURE_17:callers authenticate with function keys; client certificates would force every registering service to hold one
  // checkov:skip=CKV_AZURE_212:a serverless plan scales from zero; there is no minimum instance count to set for failover
  // checkov:skip=CKV_AZURE_213:the Functions host probes the handler itself (GET / readiness); App Service health check is a dedicated-plan feature
  name: name
  location: location
  kind: 'functionapp,linux'
  identity: isUserAssigned ? {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${userAssignedIdentityId}': {}
    }
  } : {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: hostingPlan.id
    reserved: true
    httpsOnly: true
    clientAffinityEnabled: false
    functionAppConfig: isFlex ? flexConfig : null
    siteConfig: {
      ftpsState: 'Disabled'
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
      remoteDebuggingEnabled: false
      appSettings: [for setting in items(appSettings): {
        name: setting.key
        value: string(setting.value)
      }]
    }
  }
}

output name string = site.name
output id string = site.id
output defaultHostName string = site.properties.defaultHostName
output principalId string = isUserAssigned ? '' : site.identity.principalId
