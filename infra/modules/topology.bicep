// The recipe's wider topology, optional (main.bicep: deployRecipeTopology): a client web app on
// App Service, Azure SQL, Azure Cache for Redis, and Service Connector links from the function app
// and the web app to what each uses, all with system-assigned managed identities.
//
// Without the recipe's flaws: no SQL password exists at all (Entra-only authentication), Redis
// takes TLS only and Entra tokens only (no access keys), no public blob, TLS 1.2 minimum.
// The handler reads none of the SQL or Redis settings; it learns these connections from the links
// themselves (the Service Connector sync, docs/arm-sync.md), with Reader on both apps (below).

param location string
param webAppName string
param webPlanName string
param webPlanSku string
param sqlServerName string
param sqlDatabaseName string
param redisName string

@description('Entra ID object id of the SQL administrator (a user, group or service principal).')
param sqlAdminObjectId string
@description('Display name (or UPN) of that administrator.')
param sqlAdminLogin string
param sqlAdminPrincipalType string

param functionAppName string
@description('Object (principal) id of the identity the registry runs as: it reads both apps\' linkers.')
param registryPrincipalId string
param storageAccountName string
param logAnalyticsId string

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' existing = {
  parent: storageAccount
  name: 'default'
}

// --- the client web app ------------------------------------------------------------------------

resource webPlan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225:zone redundancy needs Premium v3 with three instances; this demo client runs on one Basic instance
  name: webPlanName
  location: location
  kind: 'linux'
  sku: {
    name: webPlanSku
  }
  properties: {
    reserved: true
  }
}

// No app settings here: Service Connector writes the connection settings onto this site, and a
// siteConfig.appSettings list would replace them on the next deployment.
resource webApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222:a public demo client of the registry; no virtual network in this template, so callers and the platform reach it over the public endpoint
  // checkov:skip=CKV_AZURE_212:one instance for the recipe's demo client; scale the plan out for failover
  // checkov:skip=CKV_AZURE_17:a browser-facing client; requiring client certificates would lock out its users
  name: webAppName
  location: location
  kind: 'app,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: webPlan.id
    reserved: true
    httpsOnly: true
    clientAffinityEnabled: false
    siteConfig: {
      linuxFxVersion: 'NODE|22-lts'
      ftpsState: 'Disabled'
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
      remoteDebuggingEnabled: false
      alwaysOn: true
      healthCheckPath: '/'
      detailedErrorLoggingEnabled: true
      httpLoggingEnabled: true
      requestTracingEnabled: true
    }
  }
}

// Storage Table Data Contributor for the web app, assigned before its Service Connector link so the
// link finds the role in place (the function app's comes from roles.bicep the same way).
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
resource webAppTableRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(tableService.id, webAppName, storageTableDataContributor)
  scope: tableService
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: webApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// --- Azure SQL: Entra-only, no SQL login or password -----------------------------------------------

resource sqlServer 'Microsoft.Sql/servers@2023-08-01' = {
  // checkov:skip=CKV_AZURE_113:public network access stays on: no virtual network in this template, so callers and the platform reach it over the public endpoint; only Entra ID tokens are accepted and the firewall admits Azure services only
  name: sqlServerName
  location: location
  properties: {
    version: '12.0'
    minimalTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
    administrators: {
      administratorType: 'ActiveDirectory'
      azureADOnlyAuthentication: true
      login: sqlAdminLogin
      sid: sqlAdminObjectId
      principalType: sqlAdminPrincipalType
      tenantId: subscription().tenantId
    }
  }
}

// App Service has no fixed outbound address without a virtual network; this rule (0.0.0.0) admits
// Azure services only, not the internet, and a token is still required.
resource sqlAllowAzure 'Microsoft.Sql/servers/firewallRules@2023-08-01' = {
  parent: sqlServer
  name: 'AllowAllWindowsAzureIps'
  properties: {
    startIpAddress: '0.0.0.0'
    endIpAddress: '0.0.0.0'
  }
}

resource sqlDatabase 'Microsoft.Sql/servers/databases@2023-08-01' = {
  // checkov:skip=CKV_AZURE_229:the Basic tier has no zone redundancy; choose a Premium or Business Critical tier for it
  // checkov:skip=CKV_AZURE_26:alert recipients belong to Defender for SQL alerts, which are not enabled (CKV_AZURE_25)
  // checkov:skip=CKV_AZURE_27:alert recipients belong to Defender for SQL alerts, which are not enabled (CKV_AZURE_25)
  parent: sqlServer
  name: sqlDatabaseName
  location: location
  sku: {
    name: 'Basic'
    tier: 'Basic'
  }
}

// Audit to the same Log Analytics workspace as the function app's telemetry (SQL sends server
// audit events there only once the diagnostic setting below exists).
resource sqlAuditing 'Microsoft.Sql/servers/auditingSettings@2023-08-01' = {
  parent: sqlServer
  name: 'default'
  properties: {
    state: 'Enabled'
    isAzureMonitorTargetEnabled: true
    retentionDays: 90
  }
}

// Server-level audit events reach Azure Monitor through a diagnostic setting on `master`.
resource sqlMaster 'Microsoft.Sql/servers/databases@2023-08-01' existing = {
  parent: sqlServer
  name: 'master'
}

resource sqlAuditDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'sql-audit'
  scope: sqlMaster
  properties: {
    workspaceId: logAnalyticsId
    logs: [
      {
        category: 'SQLSecurityAuditEvents'
        enabled: true
      }
    ]
  }
}

// --- Azure Cache for Redis: TLS only, Entra tokens only ----------------------------------------------

resource redis 'Microsoft.Cache/redis@2024-11-01' = {
  // checkov:skip=CKV_AZURE_89:public network access stays on: no virtual network in this template, so callers and the platform reach it over the public endpoint; TLS only and Entra ID tokens only (access keys disabled)
  name: redisName
  location: location
  properties: {
    sku: {
      name: 'Basic'
      family: 'C'
      capacity: 0
    }
    enableNonSslPort: false
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
    disableAccessKeyAuthentication: true
    redisConfiguration: {
      'aad-enabled': 'true'
    }
  }
}

// Entra authentication on Redis is per identity: the web app may read and write data, nothing more.
resource redisWebAppAccess 'Microsoft.Cache/redis/accessPolicyAssignments@2024-11-01' = {
  parent: redis
  name: guid(redis.id, webAppName, 'Data Contributor')
  properties: {
    accessPolicyName: 'Data Contributor'
    objectId: webApp.identity.principalId
    objectIdAlias: webAppName
  }
}

// --- Service Connector links (system-assigned identity everywhere) --------------------------------

// The function app to the registry's tables. It writes AZURE_STORAGETABLE_RESOURCEENDPOINT, which
// functionapp.bicep sets to the same value, so a redeployment of the site cannot lose it.
resource functionAppTables 'Microsoft.ServiceLinker/linkers@2024-04-01' = {
  name: 'registrytables'
  scope: functionApp
  properties: {
    clientType: 'none'
    targetService: {
      type: 'AzureResource'
      id: tableService.id
    }
    authInfo: {
      authType: 'systemAssignedIdentity'
    }
  }
}

resource webAppTables 'Microsoft.ServiceLinker/linkers@2024-04-01' = {
  name: 'registrytables'
  scope: webApp
  properties: {
    clientType: 'none'
    targetService: {
      type: 'AzureResource'
      id: tableService.id
    }
    authInfo: {
      authType: 'systemAssignedIdentity'
    }
  }
  dependsOn: [
    webAppTableRole
  ]
}

resource webAppSql 'Microsoft.ServiceLinker/linkers@2024-04-01' = {
  name: 'database'
  scope: webApp
  properties: {
    clientType: 'none'
    targetService: {
      type: 'AzureResource'
      id: sqlDatabase.id
    }
    authInfo: {
      authType: 'systemAssignedIdentity'
    }
  }
}

resource webAppRedis 'Microsoft.ServiceLinker/linkers@2024-04-01' = {
  name: 'cache'
  scope: webApp
  properties: {
    clientType: 'none'
    targetService: {
      type: 'AzureResource'
      id: '${redis.id}/databases/0'
    }
    authInfo: {
      authType: 'systemAssignedIdentity'
    }
  }
  dependsOn: [
    redisWebAppAccess
  ]
}

// --- Reader for the registry's Service Connector sync -------------------------------------------

// The handler lists both apps' linkers (Microsoft.ServiceLinker/linkers/read, an extension resource
// of each site) with its own identity: Reader on those two sites, nothing wider (docs/arm-sync.md).
var reader = 'acdd72a7-3385-48ef-bd42-f606fba81ae7'
resource functionAppReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(functionApp.id, registryPrincipalId, reader)
  scope: functionApp
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', reader)
    principalId: registryPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource webAppReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(webApp.id, registryPrincipalId, reader)
  scope: webApp
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', reader)
    principalId: registryPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output webAppName string = webApp.name
output webAppHostName string = webApp.properties.defaultHostName
output webAppPrincipalId string = webApp.identity.principalId
output sqlServerName string = sqlServer.name
output sqlDatabaseName string = sqlDatabase.name
output redisHostName string = redis.properties.hostName
