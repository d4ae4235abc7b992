// Service registry on Azure Functions (custom handler, Linux Consumption) with Azure Table Storage.
//
// Deploys:
//   - a storage account (StorageV2, Standard_LRS, TLS 1.2, HTTPS only, no public blob access)
//     with the tables ServiceRegistry and HealthStatus; it is also the Functions host's own storage
//   - a Log Analytics workspace and a workspace-based Application Insights component
//   - a Linux Consumption plan (Y1, reserved)
//   - the Function App (kind functionapp,linux; FUNCTIONS_WORKER_RUNTIME=custom; runtime ~4)
//
// The code is deployed separately as ONE zip (see infra/package.sh and infra/deploy.sh).
// No output carries a secret.

targetScope = 'resourceGroup'

@description('Azure region for every resource.')
param location string = resourceGroup().location

@description('Short prefix for resource names: lowercase letters and digits (hyphens are dropped from the storage account name). At most 11 characters are used in the storage account name.')
@minLength(2)
@maxLength(20)
param namePrefix string = 'svcreg'

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

var prefix = toLower(namePrefix)
// uniqueString gives 13 lowercase alphanumerics, stable for this resource group and prefix.
var suffix = uniqueString(resourceGroup().id, prefix)

// Storage account names: 3-24 lowercase letters and digits, globally unique.
var storageAccountName = take('${take(replace(prefix, '-', ''), 11)}${suffix}', 24)
var functionAppName = '${prefix}-func-${suffix}'
var planName = '${prefix}-plan-${suffix}'
var appInsightsName = '${prefix}-appi-${suffix}'
var logAnalyticsName = '${prefix}-log-${suffix}'

// Table names: must match what the handler reads from REGISTRY_TABLE / HEALTH_TABLE.
var registryTableName = 'ServiceRegistry'
var healthTableName = 'HealthStatus'

// ---------------------------------------------------------------------------------------------
// Storage: the registry's tables and the Functions host's own storage
// ---------------------------------------------------------------------------------------------

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-01-01' = {
  name: storageAccountName
  location: location
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    // Shared-key access stays on: the connection strings below (secret auth) and the Linux
    // Consumption content share need the account key. See infra/README.md for managed identity.
    allowSharedKeyAccess: true
    accessTier: 'Hot'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-01-01' = {
  parent: storageAccount
  name: 'default'
}

resource registryTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-01-01' = {
  parent: tableService
  name: registryTableName
}

resource healthTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-01-01' = {
  parent: tableService
  name: healthTableName
}

// Secret-auth option: an account-key connection string, built at deployment time and written
// only into app settings (never into an output). This is the same shape Azure Service Connector
// injects as AZURE_STORAGETABLE_CONNECTIONSTRING for a storage-table connection with secret auth.
var storageConnectionString = 'DefaultEndpointsProtocol=https;AccountName=${storageAccount.name};AccountKey=${storageAccount.listKeys().keys[0].value};EndpointSuffix=${environment().suffixes.storage}'

// ---------------------------------------------------------------------------------------------
// Monitoring: Log Analytics + workspace-based Application Insights
// ---------------------------------------------------------------------------------------------

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2022-10-01' = {
  name: logAnalyticsName
  location: location
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
  }
}

// ---------------------------------------------------------------------------------------------
// Compute: Linux Consumption plan + Function App (custom handler)
// ---------------------------------------------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2023-01-01' = {
  name: planName
  location: location
  kind: 'linux'
  sku: {
    name: 'Y1'
    tier: 'Dynamic'
  }
  properties: {
    reserved: true // Linux
  }
}

resource functionApp 'Microsoft.Web/sites@2023-01-01' = {
  name: functionAppName
  location: location
  kind: 'functionapp,linux'
  // A system-assigned identity costs nothing and is what the managed-identity option
  // (AZURE_STORAGETABLE_RESOURCEENDPOINT) would use; the connection strings below do not need it.
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    reserved: true
    httpsOnly: true
    clientAffinityEnabled: false
    siteConfig: {
      // No linuxFxVersion: a custom handler ships its own executable (`handler` in the zip), so
      // there is no language stack to pick; the platform leaves it empty for runtime "custom".
      ftpsState: 'Disabled'
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
      appSettings: [
        {
          name: 'FUNCTIONS_EXTENSION_VERSION'
          value: '~4'
        }
        {
          name: 'FUNCTIONS_WORKER_RUNTIME'
          value: 'custom'
        }
        {
          // The Functions host's own storage (timer singleton lease, keys, deployment package).
          name: 'AzureWebJobsStorage'
          value: storageConnectionString
        }
        {
          // Linux Consumption keeps the app's content on an Azure Files share in this account.
          name: 'WEBSITE_CONTENTAZUREFILECONNECTIONSTRING'
          value: storageConnectionString
        }
        {
          name: 'WEBSITE_CONTENTSHARE'
          value: toLower(functionAppName)
        }
        {
          // Secret auth (what Service Connector injects). The handler reads it before
          // AzureWebJobsStorage. To move to managed identity, see infra/README.md.
          name: 'AZURE_STORAGETABLE_CONNECTIONSTRING'
          value: storageConnectionString
        }
        {
          name: 'REGISTRY_TABLE'
          value: registryTableName
        }
        {
          name: 'HEALTH_TABLE'
          value: healthTableName
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: appInsights.properties.ConnectionString
        }
      ]
    }
  }
  // The handler creates missing tables at start-up too, but deploying them here first means the
  // app's first cold start does not race table creation.
  dependsOn: [
    registryTable
    healthTable
  ]
}

// ---------------------------------------------------------------------------------------------
// Outputs (no secrets)
// ---------------------------------------------------------------------------------------------

output functionAppName string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
output storageAccountName string = storageAccount.name
