// Log Analytics and a workspace-based Application Insights component that accepts telemetry only
// from Entra ID identities (DisableLocalAuth), so its connection string grants nothing on its own:
// the app sends with its managed identity (APPLICATIONINSIGHTS_AUTHENTICATION_STRING) and holds
// the Monitoring Metrics Publisher role (roles.bicep).

param location string
param logAnalyticsName string
param appInsightsName string

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
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
    DisableLocalAuth: true
  }
}

output appInsightsName string = appInsights.name
output appInsightsId string = appInsights.id
output logAnalyticsId string = logAnalytics.id
