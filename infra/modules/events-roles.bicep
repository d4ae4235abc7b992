// The identity's rights on the health-change events' destinations (events.bicep): put messages on
// the events queue and nothing more, and publish to the topic when there is one.

@description('Object (principal) id of the identity the app runs as.')
param principalId string
param storageAccountName string
param queueName string
@description('The Event Grid topic\'s name; empty: none.')
param topicName string

// Built-in role definition ids (the same in every tenant).
var storageQueueDataMessageSender = 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
var eventGridDataSender = 'd5a91429-5739-47e2-a06b-3470a27159e7'

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: storageAccount
  name: 'default'
}

resource eventsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: queueService
  name: queueName
}

resource topic 'Microsoft.EventGrid/topics@2022-06-15' existing = if (!empty(topicName)) {
  name: empty(topicName) ? 'unused' : topicName
}

// Put only, on this queue only: the handler never reads or deletes events.
resource queueSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(eventsQueue.id, principalId, storageQueueDataMessageSender)
  scope: eventsQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataMessageSender)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource topicSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(topicName)) {
  name: guid(resourceId('Microsoft.EventGrid/topics', empty(topicName) ? 'unused' : topicName), principalId, eventGridDataSender)
  scope: topic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventGridDataSender)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
