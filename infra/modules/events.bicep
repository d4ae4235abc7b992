// Health-change events (docs/events.md): the Storage Queue the sweep publishes to
// (HEALTH_EVENTS_QUEUE) and an Azure Monitor alert on unhealthy transitions, counted from the
// sweep's `health transition` log lines. Created before the function app, whose settings name the
// queue; the optional Event Grid topic is events-topic.bicep's, the identity's rights on both are
// events-roles.bicep's.

param location string
param storageAccountName string
@description('The queue events are put on: 3-63 lowercase letters, digits and hyphens.')
param queueName string
@description('Names the alert rule.')
param alertName string
@description('Application Insights the handler logs to: the alert rule queries its traces.')
param appInsightsId string
@description('Action group the alert notifies (email, Teams webhook, Logic App); empty: the alert fires without notifying.')
param actionGroupId string = ''

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: storageAccount
  name: 'default'
}

resource eventsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: queueName
}

// Fires when any instance turned unhealthy in the last five minutes (one sweep interval), from the
// one log line the sweep writes per transition (docs/operations.md, "Health-change events").
resource unhealthyAlert 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: alertName
  location: location
  properties: {
    displayName: 'Service registry: instances turned unhealthy'
    description: 'One or more registered instances changed to unhealthy (health transition log lines with to = unhealthy).'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: 'traces | where message has "health transition" | extend j = parse_json(extract(@"(\\{.*\\})", 1, message)) | where tostring(j.message) == "health transition" and tostring(j.to) == "unhealthy" | project timestamp, subject = tostring(j.subject), reason = tostring(j.reason)'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
          dimensions: [
            {
              name: 'subject'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
        }
      ]
    }
    actions: {
      actionGroups: empty(actionGroupId) ? [] : [
        actionGroupId
      ]
    }
  }
}

output queueName string = eventsQueue.name
