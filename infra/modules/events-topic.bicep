// The optional Event Grid topic health-change events are also published to
// (HEALTH_EVENTS_TOPIC_ENDPOINT, docs/events.md): CloudEvents 1.0 input, local auth off, so the app
// publishes with its identity's token (events-roles.bicep grants EventGrid Data Sender).

param location string
param name string

resource topic 'Microsoft.EventGrid/topics@2022-06-15' = {
  // checkov:skip=CKV_AZURE_193:public network access stays on: no virtual network in this template; publishing needs an Entra ID token (local auth is off)
  name: name
  location: location
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

output endpoint string = topic.properties.endpoint
