// The one storage account: the registry's three tables (registrations, health rows, the handler's
// own state rows), the Functions host's own storage and (Flex Consumption) the blob container the
// app package is deployed to.
//
// Keys are off (allowSharedKeyAccess: false) unless the plan is Linux Consumption, whose Azure
// Files content share and zip deploy can only use an account key; every other client (the
// handler, the Flex host, deployment) authenticates with the app's managed identity.

@description('Storage account name: 3-24 lowercase letters and digits, globally unique.')
param name string

param location string

@description('False only for Linux Consumption (Y1), whose content share needs the account key.')
param allowSharedKeyAccess bool

@description('Blob container for Flex Consumption packages; empty: none.')
param deploymentContainerName string

param registryTableName string
param healthTableName string
@description('The handler\'s own rows: the sweep lease and the last sweep\'s summary.')
param stateTableName string

@description('The sweep\'s shard queue (SWEEP_QUEUE); its poison queue is <name>-poison.')
param sweepQueueName string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_59:public network access stays on: no virtual network in this template, so callers and the platform reach it over the public endpoint; requests still need an Entra ID token
  // checkov:skip=CKV_AZURE_206:LRS by choice: registrations are re-sent by heartbeats and health rows are rewritten by every sweep; GRS doubles the storage cost
  // checkov:skip=CKV_AZURE_35:Without a virtual network the Functions host reaches its storage over the public endpoint; the account admits Entra ID tokens only (no keys on Flex)
  name: name
  location: location
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: allowSharedKeyAccess
    // The portal and CLI then use Entra ID too, so nobody needs a key to look at the tables.
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    // A deleted package or host lease blob can be restored for a week.
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = if (!empty(deploymentContainerName)) {
  parent: blobService
  name: empty(deploymentContainerName) ? 'unused' : deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

// The handler creates missing tables at start-up too; creating them here means the first cold
// start does not race table creation.
resource registryTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: registryTableName
}

resource healthTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: healthTableName
}

resource stateTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: stateTableName
}

// The fanned-out sweep: the queue its shards travel on, and the poison queue the host (or the
// standalone poller) moves a shard to after maxDequeueCount failed tries. Created here so the
// ProbeShard trigger has a queue to listen on from the first start.
resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource sweepQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: sweepQueueName
}

resource sweepPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: '${sweepQueueName}-poison'
}

output id string = account.id
output name string = account.name
output tableServiceId string = tableService.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
output tableEndpoint string = account.properties.primaryEndpoints.table
output queueEndpoint string = account.properties.primaryEndpoints.queue
