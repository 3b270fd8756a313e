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
param maximumInstanceCount int
param identityId string
param identityClientId string
@description('Versionless URI of the Key Vault secret holding CONNECTOR_PROVIDERS.')
param connectorProvidersSecretUri string
@description('GRAPH_BASE_URL; empty: not written (the app then uses https://graph.microsoft.com/v1.0).')
param graphBaseUrl string = ''
@description('CONNECTOR_RECONCILE_SCHEDULE: when the reconciliation timer runs (six-field NCRONTAB, UTC).')
param reconcileSchedule string = '0 0 3 * * *'
@description('false: the reconciliation timer is disabled (AzureWebJobs.reconcile_course_activities.Disabled).')
param reconcileEnabled bool = true
@description('CONNECTOR_APP_CLIENT_ID, the multi-tenant app for providers in other tenants; empty: not written.')
param connectorAppClientId string = ''
@description('Subnet for virtual network integration; empty: none.')
param virtualNetworkSubnetId string = ''

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
    // Host storage, the queue bindings and the connector's own queue and table clients (connector/settings.py),
    // identity-based. The endpoints as the account reports them, as in the Flex Consumption quickstart: they are right
    // in every cloud, where __accountName makes the host assume global Azure's endpoint suffix.
    AzureWebJobsStorage__blobServiceUri: stg.properties.primaryEndpoints.blob
    AzureWebJobsStorage__queueServiceUri: stg.properties.primaryEndpoints.queue
    AzureWebJobsStorage__tableServiceUri: stg.properties.primaryEndpoints.table
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    // The user-assigned identity azure.identity uses for Microsoft Graph (connector/adapters/identity.py).
    AZURE_CLIENT_ID: identityClientId
    // Application Insights with local authentication disabled: the host, and the app's own exporter
    // (connector/adapters/telemetry.py), authenticate as the identity named here.
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
    // The providers' webhook secrets stay in Key Vault; App Service resolves the reference with
    // keyVaultReferenceIdentity (below). An unresolved reference reaches the app as the literal
    // "@Microsoft.KeyVault(...)" text, which fails start-up with "CONNECTOR_PROVIDERS: is not valid JSON".
    CONNECTOR_PROVIDERS: '@Microsoft.KeyVault(SecretUri=${connectorProvidersSecretUri})'
    // The reconciliation timer's schedule (connector/settings.py checks it; the host reads it for the trigger).
    CONNECTOR_RECONCILE_SCHEDULE: reconcileSchedule
  },
  // The platform's switch for one function: the timer off, the rest of the app as it is.
  reconcileEnabled ? {} : { 'AzureWebJobs.reconcile_course_activities.Disabled': 'true' },
  // Only when set: the code's default (https://graph.microsoft.com/v1.0) is the right one for global Azure.
  empty(graphBaseUrl) ? {} : { GRAPH_BASE_URL: graphBaseUrl },
  // Only when the deployment serves other tenants (connector/adapters/tenants.py; the app refuses to start without
  // it once a provider names a tenantId).
  empty(connectorAppClientId) ? {} : { CONNECTOR_APP_CLIENT_ID: connectorAppClientId }
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
    // Given in full: this object replaces the module's default siteConfig (minTlsVersion 1.2, ftpsState FtpsOnly).
    siteConfig: {
      alwaysOn: false // Flex Consumption has no always-on
      minTlsVersion: '1.2'
      ftpsState: 'Disabled' // no FTP at all: azd deploys through the Flex deployment API with Entra ID
    }
    // No basic (user name and password) publishing credentials for FTP or the SCM site: deployments authenticate
    // with Microsoft Entra ID.
    basicPublishingCredentialsPolicies: [
      {
        name: 'ftp'
        allow: false
      }
      {
        name: 'scm'
        allow: false
      }
    ]
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
    appSettingsKeyValuePairs: appSettings
  }
}

output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_DEFAULT_HOSTNAME string = api.outputs.defaultHostname
