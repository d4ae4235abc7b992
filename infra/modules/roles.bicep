// The data-plane roles the app's managed identity needs, each at the narrowest scope that works.
//
// Role ids are Azure's built-in role definition ids (the same in every tenant); the names are in
// the comments. Assignment names are deterministic GUIDs, so a redeployment finds the same ones.

@description('Object (principal) id of the identity the app runs as.')
param principalId string
param storageAccountName string
param appInsightsName string

@description('Flex Consumption: the host reaches its storage and the deployment container with the identity too.')
param hostUsesIdentity bool

var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' existing = {
  parent: storageAccount
  name: 'default'
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// Host storage (the timer's singleton lease, host keys) and the Flex deployment container, which is
// in this account: Owner includes Contributor, so no second assignment on the container.
resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hostUsesIdentity) {
  name: guid(storageAccount.id, principalId, storageBlobDataOwner)
  scope: storageAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Queues: the handler puts, takes, renews and deletes the sweep's shards with the identity on
// either plan, and on Flex the host's identity-based AzureWebJobsStorage (the ProbeShard trigger,
// the poison queue) needs it too. Data Contributor is the narrowest built-in role with delete and
// update message; the handler creates its queues if missing, a request to the queue service.
resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storageAccount.id, principalId, storageQueueDataContributor)
  scope: storageAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// The registry's tables. Scoped to the table service rather than to each table because the
// handler creates any missing table at start-up, and Create Table is a request to the service
// (POST /Tables), not to a table.
resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(tableService.id, principalId, storageTableDataContributor)
  scope: tableService
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Application Insights with local auth disabled accepts telemetry only from this role.
resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
