// The function app: Flex Consumption (FC1), Python 3.11, one user-assigned identity, identity-based settings only.
param name string
@description('Primary location for all resources & Flex Consumption Function App')
param location string = resourceGroup().location
param tags object = {}
param applicationInsightsName string
param appServicePlanId string
param runtimeName string
param runtimeVersion string
param serviceName string = 'api'
param storageAccountName string
param deploymentStorageContainerName string
param instanceMemoryMB int = 2048
param maximumInstanceCount int = 10
param identityId string
param identityClientId string
@description('Versionless URI of the Key Vault secret holding CONNECTOR_PROVIDERS.')
param connectorProvidersSecretUri string
@description('GRAPH_BASE_URL; empty: not written (the app then uses https://graph.microsoft.com/v1.0).')
param graphBaseUrl string = ''

resource stg 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Every app setting the app gets. tests/infra/test_infra_consistency.py reads this block: each key must be read by
// the code or by the platform, and each setting the code reads must be written here or documented as optional.
// Not here on purpose: FUNCTIONS_WORKER_RUNTIME and FUNCTIONS_EXTENSION_VERSION (Flex Consumption takes the runtime
// from functionAppConfig.runtime and rejects them), and any connection string or key.
var appSettings = union(
  {
    // Host storage, the queue bindings and the connector's own queue and table clients, identity-based. The host
    // and the code (connector/settings.py) derive the blob, queue and table endpoints from __accountName.
    AzureWebJobsStorage__accountName: stg.name
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    // The user-assigned identity azure.identity uses for Microsoft Graph (connector/identity.py).
    AZURE_CLIENT_ID: identityClientId
    // Application Insights with local authentication disabled: the host, and the app's own exporter
    // (connector/telemetry.py), authenticate as the identity named here.
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
    // The providers' webhook secrets stay in Key Vault; App Service resolves the reference with
    // keyVaultReferenceIdentity (below). An unresolved reference reaches the app as the literal
    // "@Microsoft.KeyVault(...)" text, which fails start-up with "CONNECTOR_PROVIDERS: is not valid JSON".
    CONNECTOR_PROVIDERS: '@Microsoft.KeyVault(SecretUri=${connectorProvidersSecretUri})'
  },
  // Only when set: the code's default (https://graph.microsoft.com/v1.0) is the right one for global Azure.
  empty(graphBaseUrl) ? {} : { GRAPH_BASE_URL: graphBaseUrl }
)

module api 'br/public:avm/res/web/site:0.15.1' = {
  name: '${serviceName}-flex-consumption'
  params: {
    kind: 'functionapp,linux'
    name: name
    location: location
    tags: union(tags, { 'azd-service-name': serviceName })
    serverFarmResourceId: appServicePlanId
    managedIdentities: {
      systemAssigned: false
      userAssignedResourceIds: [
        identityId
      ]
    }
    // Key Vault references resolve with the user-assigned identity (there is no system-assigned one).
    keyVaultAccessIdentityResourceId: identityId
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${stg.properties.primaryEndpoints.blob}${deploymentStorageContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        // Bounds the Graph request rate: at most 24 updates in flight per instance (host.json batchSize 16 +
        // newBatchThreshold 8).
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: runtimeName
        version: runtimeVersion
      }
    }
    siteConfig: {
      alwaysOn: false // as the quickstart; other siteConfig properties are left at the platform's defaults
    }
    appSettingsKeyValuePairs: appSettings
  }
}

output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_DEFAULT_HOSTNAME string = api.outputs.defaultHostname
