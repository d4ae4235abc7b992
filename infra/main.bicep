// Service registry: the Rust `handler` as an Azure Functions custom handler, its state in Azure
// Table Storage. Deployed as ONE zip afterwards (infra/package.sh, infra/deploy.sh).
//
// By default (Flex Consumption, system-assigned identity) nothing in it holds a secret: the
// storage account has shared keys off, and the host, the deployment, the handler and telemetry all
// authenticate with the app's managed identity. The modules:
//   modules/storage.bicep      the account: the three tables, the sweep's shard queue and its poison queue, host storage, the deployment container
//   modules/monitoring.bicep   Log Analytics + Application Insights (Entra ID ingestion only)
//   modules/functionapp.bicep  the plan (FC1, or Y1 for existing apps) and the function app
//   modules/roles.bicep        the identity's data roles
//   modules/topology.bicep     optional: the recipe's web app, Azure SQL, Redis, Service Connector
//   modules/events.bicep       the health-change events' queue and the unhealthy-transitions alert
//   modules/events-topic.bicep optional: an Event Grid topic for them
//   modules/events-roles.bicep the identity's rights on both
// No output carries a secret. What was checked offline and what never ran: infra/README.md.

targetScope = 'resourceGroup'

@description('Azure region for every resource (Flex Consumption is not offered in every region).')
param location string = resourceGroup().location

@description('Short prefix for resource names: lowercase letters, digits and hyphens (hyphens are dropped from the storage account name, which takes at most 11 characters of it).')
@minLength(2)
@maxLength(20)
param namePrefix string = 'svcreg'

@description('FlexConsumption (FC1): the default. Consumption (Linux Y1): only for apps already on it; that plan gets no new features and retires on 2028-09-30.')
@allowed([
  'FlexConsumption'
  'Consumption'
])
param plan string = 'FlexConsumption'

@description('SystemAssigned: the app\'s own identity. UserAssigned: a user-assigned identity created here and used for everything; the handler is told its client id in AZURE_STORAGETABLE_CLIENTID.')
@allowed([
  'SystemAssigned'
  'UserAssigned'
])
param identityType string = 'SystemAssigned'

@description('Flex Consumption: the most instances the app may scale out to (the platform lists 40 to 1000 for custom handlers).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Flex Consumption: memory per instance in MB. The handler needs little; 512 is the cheapest.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 512

@description('Handler settings added to the app settings, e.g. {"HEALTH_PROBE_TIMEOUT_MS": "3000"}; names from the README\'s Configuration table (infra/deploy.sh checks them). The template\'s own settings win on a clash.')
param handlerSettings object = {}

@description('Also deploy the recipe\'s topology: an App Service web app, Azure SQL (Entra-only), Azure Cache for Redis (TLS and Entra only) and Service Connector links. Off by default: it costs money every hour, the function app alone does not.')
param deployRecipeTopology bool = false

@description('deployRecipeTopology: App Service plan SKU of the web app.')
param webPlanSku string = 'B1'

@description('deployRecipeTopology: Entra ID object id of the Azure SQL administrator (infra/deploy.sh passes the signed-in user\'s).')
param sqlAdminObjectId string = ''

@description('deployRecipeTopology: that administrator\'s display name or user principal name.')
param sqlAdminLogin string = ''

@description('deployRecipeTopology: User, Group or Application.')
@allowed([
  'User'
  'Group'
  'Application'
])
param sqlAdminPrincipalType string = 'User'

@description('Health-change events (docs/events.md): also publish to a new Event Grid topic (CloudEvents 1.0, Entra ID only).')
param deployEventsTopic bool = false

@description('Action group the unhealthy-transitions alert notifies (its resource id); empty: the alert fires without notifying.')
param alertActionGroupId string = ''

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

var prefix = toLower(namePrefix)
// 13 lowercase alphanumerics, stable for this resource group and prefix.
var suffix = uniqueString(resourceGroup().id, prefix)
var isFlex = plan == 'FlexConsumption'
var isUserAssigned = identityType == 'UserAssigned'

var storageAccountName = take('${take(replace(prefix, '-', ''), 11)}${suffix}', 24)
var functionAppName = '${prefix}-func-${suffix}'
var deploymentContainerName = isFlex ? 'app-package' : ''

var webAppName = '${prefix}-web-${suffix}'
// With the recipe's topology, the handler syncs the Service Connector linkers of both apps
// (SERVICE_CONNECTOR_SYNC_SOURCES, docs/arm-sync.md): IDs built from the names, so the function
// app's settings need not wait for the web app.
var connectorSyncSources = deployRecipeTopology ? '${resourceId('Microsoft.Web/sites', functionAppName)},${resourceId('Microsoft.Web/sites', webAppName)}' : ''

// Must match what the handler reads from REGISTRY_TABLE / HEALTH_TABLE / STATE_TABLE (set below).
var registryTableName = 'ServiceRegistry'
var healthTableName = 'HealthStatus'
var stateTableName = 'RegistryState'
// What the handler reads from HEALTH_EVENTS_QUEUE (set below).
var eventsQueueName = 'health-events'
var eventsTopicName = '${prefix}-events-${suffix}'
var eventsAppSettings = {
  HEALTH_EVENTS_QUEUE: eventsQueueName
}
// The fanned-out sweep's shard queue (docs/performance.md, "The fanned-out sweep").
var sweepQueueName = 'sweep-shards'

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: storageAccountName
    location: location
    allowSharedKeyAccess: !isFlex
    deploymentContainerName: deploymentContainerName
    registryTableName: registryTableName
    healthTableName: healthTableName
    stateTableName: stateTableName
    sweepQueueName: sweepQueueName
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    logAnalyticsName: '${prefix}-log-${suffix}'
    appInsightsName: '${prefix}-appi-${suffix}'
  }
}

module events 'modules/events.bicep' = {
  name: 'events'
  params: {
    location: location
    storageAccountName: storage.outputs.name
    queueName: eventsQueueName
    alertName: '${prefix}-unhealthy-${suffix}'
    appInsightsId: monitoring.outputs.appInsightsId
    actionGroupId: alertActionGroupId
  }
}

module eventsTopic 'modules/events-topic.bicep' = if (deployEventsTopic) {
  name: 'events-topic'
  params: {
    location: location
    name: eventsTopicName
  }
}

// The topic's endpoint, known once it exists: set only when it is deployed.
var eventsTopicAppSettings = {
  HEALTH_EVENTS_TOPIC_ENDPOINT: deployEventsTopic ? eventsTopic.outputs.endpoint : ''
}

resource userAssignedIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = if (isUserAssigned) {
  name: '${prefix}-id-${suffix}'
  location: location
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    location: location
    name: functionAppName
    planName: '${prefix}-plan-${suffix}'
    plan: plan
    userAssignedIdentityId: isUserAssigned ? userAssignedIdentity.id : ''
    userAssignedClientId: isUserAssigned ? userAssignedIdentity.properties.clientId : ''
    storageAccountName: storage.outputs.name
    blobEndpoint: storage.outputs.blobEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    sweepQueueName: sweepQueueName
    deploymentContainerName: deploymentContainerName
    registryTableName: registryTableName
    healthTableName: healthTableName
    stateTableName: stateTableName
    appInsightsName: monitoring.outputs.appInsightsName
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    handlerSettings: union(handlerSettings, eventsAppSettings, deployEventsTopic ? eventsTopicAppSettings : {})
    connectorSyncSources: connectorSyncSources
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    principalId: isUserAssigned ? userAssignedIdentity.properties.principalId : functionApp.outputs.principalId
    storageAccountName: storage.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    hostUsesIdentity: isFlex
  }
}

module eventRoles 'modules/events-roles.bicep' = {
  name: 'event-roles'
  params: {
    principalId: isUserAssigned ? userAssignedIdentity.properties.principalId : functionApp.outputs.principalId
    storageAccountName: storage.outputs.name
    queueName: events.outputs.queueName
    topicName: deployEventsTopic ? eventsTopicName : ''
  }
}

module topology 'modules/topology.bicep' = if (deployRecipeTopology) {
  name: 'topology'
  params: {
    location: location
    webAppName: webAppName
    webPlanName: '${prefix}-webplan-${suffix}'
    webPlanSku: webPlanSku
    sqlServerName: '${prefix}-sql-${suffix}'
    sqlDatabaseName: 'ServiceRegistry'
    redisName: '${prefix}-redis-${suffix}'
    sqlAdminObjectId: sqlAdminObjectId
    sqlAdminLogin: sqlAdminLogin
    sqlAdminPrincipalType: sqlAdminPrincipalType
    functionAppName: functionApp.outputs.name
    registryPrincipalId: isUserAssigned ? userAssignedIdentity.properties.principalId : functionApp.outputs.principalId
    storageAccountName: storage.outputs.name
    logAnalyticsId: monitoring.outputs.logAnalyticsId
  }
  // The links find the function app's table role already assigned.
  dependsOn: [
    roles
  ]
}

// ---------------------------------------------------------------------------------------------
// Outputs (names only, nothing secret)
// ---------------------------------------------------------------------------------------------

output functionAppName string = functionApp.outputs.name
output defaultHostName string = functionApp.outputs.defaultHostName
output storageAccountName string = storage.outputs.name
output plan string = plan
output webAppName string = deployRecipeTopology ? topology.outputs.webAppName : ''
output sqlServerName string = deployRecipeTopology ? topology.outputs.sqlServerName : ''
output sqlDatabaseName string = deployRecipeTopology ? topology.outputs.sqlDatabaseName : ''
