// The learning activity connector on Azure Functions Flex Consumption, for `azd up`.
// Layout, parameter names and AVM module versions follow Azure-Samples/functions-quickstart-python-http-azd.
// No secret is created or handed out: the app reaches Storage, Application Insights, Key Vault and Graph with one
// user-assigned managed identity. Graph application permissions are granted by the postprovision hook (azure.yaml),
// because Azure RBAC cannot grant them.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; it seeds the short unique token used in every resource name.')
param environmentName string

// No @allowed list of regions (the quickstart has one): Flex Consumption keeps gaining regions and a list here would
// go stale. `az functionapp list-flexconsumption-locations` lists the current ones.
@minLength(1)
@description('Region for every resource; it must offer the Flex Consumption plan.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

param apiServiceName string = ''
param apiUserAssignedIdentityName string = ''
param applicationInsightsName string = ''
param appServicePlanName string = ''
param keyVaultName string = ''
param logAnalyticsName string = ''
param resourceGroupName string = ''
param storageAccountName string = ''

@description('Object id of whoever runs azd (azd fills it in). Used only when operatorQueueAccess is true.')
param principalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
])
@description('The kind of principal principalId is (azd fills it in).')
param principalType string = 'User'

@description('Give principalId Storage Queue Data Contributor on the two queues, so that the operator can run `python -m connector replay` against Azure. Off by default: least privilege.')
param operatorQueueAccess bool = false

// Each instance runs at most 24 updates at once (host.json: batchSize 16 + newBatchThreshold 8), so at most
// 24 x maximumInstanceCount PATCHes are in flight against Graph (960 at the default). This is the knob that bounds the
// Graph request rate (and so Graph throttling). 40 by default because it is the lowest maximum every region accepts:
// the Flex Consumption documentation and Microsoft's Flex Bicep samples give 40 as the lowest allowed value, newer
// documentation 1; a region that still applies 40 rejects anything lower at deployment.
@minValue(1)
@maxValue(1000)
@description('Most instances the app scales out to (40: the lowest maximum every region accepts). It bounds the Graph request rate: at most 24 updates in flight per instance.')
param maximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
@description('Memory of each Flex Consumption instance, in MB.')
param instanceMemoryMB int = 2048

// The CONNECTOR_PROVIDERS setting: {"<registrationId>": {"webhookSecrets": ["<secret>"]}}. Set it with
//   azd env set CONNECTOR_PROVIDERS '{"<registrationId>": {"webhookSecrets": ["<secret>"]}}'
// (main.parameters.json maps it here). An object, not a string: azd substitutes a JSON environment value into an
// object parameter as JSON, whereas the quotes in it would break a string parameter. It is stored only in the Key
// Vault secret `connector-providers`; the app reads it through a Key Vault reference. Default: no provider yet.
@secure()
@description('CONNECTOR_PROVIDERS as a JSON object keyed by registrationId; stored in Key Vault.')
param connectorProviders object = {}

@description('Graph base URL, e.g. https://graph.microsoft.us/v1.0 for a national cloud. Empty: GRAPH_BASE_URL is not written and the app uses https://graph.microsoft.com/v1.0.')
param graphBaseUrl string = ''

@description('When the reconciliation timer runs: a six-field NCRONTAB expression in UTC (default 03:00 daily).')
param reconcileSchedule string = '0 0 3 * * *'

@description('false: the reconciliation timer does not run (the rest of the app does).')
param reconcileEnabled bool = true

// Optional network rules, off by default. Without them storage and Key Vault accept requests from any network, each of
// which still needs Microsoft Entra ID and an Azure role (no keys exist). With a subnet, the app joins it (Flex
// Consumption virtual network integration) and both deny every other network but allowedIpRanges.
@description('Resource id of a subnet for the app (delegated to Microsoft.App/environments, with the Microsoft.Storage and Microsoft.KeyVault service endpoints). Set: storage and Key Vault accept only this subnet and allowedIpRanges. Empty (default): no network rules.')
param appSubnetId string = ''

@description('Public IPv4 addresses or CIDR ranges (e.g. the operator\'s, for replay and check) that storage and Key Vault still accept when appSubnetId is set.')
param allowedIpRanges array = []

// Serving providers in other tenants (README, Serve many tenants): a multi-tenant app registration trusting the
// identity, whose client id the app gets as CONNECTOR_APP_CLIENT_ID. Created here only when asked, because it needs
// Application.ReadWrite.All in Microsoft Graph at deployment time; or made by hand and its client id given instead.
@description('Create the multi-tenant app registration (and the federated identity credential trusting the identity) that reaches customer tenants. Whoever runs azd needs Application.ReadWrite.All in Microsoft Graph. Off by default.')
param createMultiTenantApp bool = false

@description('Microsoft Graph application roles the multi-tenant app asks customer tenants for; add User.Read.All and LearningContent.Read.All for providers with createMissing.')
param multiTenantAppRoles array = [
  'LearningAssignedCourse.ReadWrite.All'
  'LearningSelfInitiatedCourse.ReadWrite.All'
]

@description('Client id of a multi-tenant app registration made by other means, written as CONNECTOR_APP_CLIENT_ID; ignored when createMultiTenantApp is true. Empty: not written.')
param connectorAppClientId string = ''

var abbrs = loadJsonContent('./abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var functionAppName = !empty(apiServiceName) ? apiServiceName : '${abbrs.webSitesFunctions}api-${resourceToken}'
var deploymentStorageContainerName = 'app-package-${take(functionAppName, 32)}-${take(toLower(uniqueString(functionAppName, resourceToken)), 7)}'

// The queues and tables the code uses: connector/domain/envelope.py QUEUE_NAME and POISON_QUEUE_NAME, connector/adapters/activity_store.py
// TABLE_NAME (activity state), connector/adapters/statement_records.py TABLE_NAME (xAPI statement ids already seen).
// tests/infra checks that these names match the code.
var queueNames = [
  'course-activity-updates'
  'course-activity-updates-poison'
]
var tableNames = [
  'courseactivitystate'
  'xapistatements'
]

resource rg 'Microsoft.Resources/resourceGroups@2021-04-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

// The app's only identity: Storage, Application Insights, Key Vault references and Graph all use it.
module apiUserAssignedIdentity 'br/public:avm/res/managed-identity/user-assigned-identity:0.4.1' = {
  name: 'apiUserAssignedIdentity'
  scope: rg
  params: {
    location: location
    tags: tags
    name: !empty(apiUserAssignedIdentityName) ? apiUserAssignedIdentityName : '${abbrs.managedIdentityUserAssignedIdentities}api-${resourceToken}'
  }
}

module appServicePlan 'br/public:avm/res/web/serverfarm:0.1.1' = {
  name: 'appserviceplan'
  scope: rg
  params: {
    name: !empty(appServicePlanName) ? appServicePlanName : '${abbrs.webServerFarms}${resourceToken}'
    sku: {
      name: 'FC1'
      tier: 'FlexConsumption'
    }
    reserved: true
    location: location
    tags: tags
  }
}

// Host storage, the deployment package container, the queues and the tables, in one account.
module storage 'br/public:avm/res/storage/storage-account:0.8.3' = {
  name: 'storage'
  scope: rg
  params: {
    name: !empty(storageAccountName) ? storageAccountName : '${abbrs.storageStorageAccounts}${resourceToken}'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false // no account keys: every client, the host included, uses Microsoft Entra ID
    dnsEndpointType: 'Standard'
    publicNetworkAccess: 'Enabled'
    networkAcls: empty(appSubnetId)
      ? {
          defaultAction: 'Allow'
          bypass: 'AzureServices'
        }
      : {
          defaultAction: 'Deny'
          bypass: 'AzureServices'
          virtualNetworkRules: [
            {
              id: appSubnetId
              action: 'Allow'
            }
          ]
          ipRules: map(allowedIpRanges, address => { value: address, action: 'Allow' })
        }
    blobServices: {
      containers: [
        {
          name: deploymentStorageContainerName
        }
      ]
    }
    minimumTlsVersion: 'TLS1_2'
    location: location
    tags: tags
  }
}

// Created up front so that the names are visible and checked; the host and the code would also create them.
module storageData 'app/storage-data.bicep' = {
  name: 'storageData'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    queueNames: queueNames
    tableNames: tableNames
  }
}

module logAnalytics 'br/public:avm/res/operational-insights/workspace:0.7.0' = {
  name: '${uniqueString(deployment().name, location)}-loganalytics'
  scope: rg
  params: {
    name: !empty(logAnalyticsName) ? logAnalyticsName : '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    location: location
    tags: tags
    dataRetention: 30
  }
}

module monitoring 'br/public:avm/res/insights/component:0.4.1' = {
  name: '${uniqueString(deployment().name, location)}-appinsights'
  scope: rg
  params: {
    name: !empty(applicationInsightsName) ? applicationInsightsName : '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
    workspaceResourceId: logAnalytics.outputs.resourceId
    disableLocalAuth: true // no instrumentation key works: telemetry is sent with the identity (Entra authentication)
  }
}

module keyVault 'app/keyvault.bicep' = {
  name: 'keyVault'
  scope: rg
  params: {
    name: !empty(keyVaultName) ? keyVaultName : '${abbrs.keyVaultVaults}${resourceToken}'
    location: location
    tags: tags
    connectorProvidersJson: string(connectorProviders)
    allowedSubnetId: appSubnetId
    allowedIpRanges: allowedIpRanges
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbacAssignments'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    appInsightsName: monitoring.outputs.name
    keyVaultName: keyVault.outputs.name
    connectorProvidersSecretName: keyVault.outputs.connectorProvidersSecretName
    queueNames: storageData.outputs.queueNames
    tableNames: storageData.outputs.tableNames
    managedIdentityPrincipalId: apiUserAssignedIdentity.outputs.principalId
    operatorPrincipalId: operatorQueueAccess ? principalId : ''
    operatorPrincipalType: principalType
  }
}

module multiTenantApp 'app/multi-tenant-app.bicep' = if (createMultiTenantApp) {
  name: 'multiTenantApp'
  scope: rg
  params: {
    uniqueName: 'learning-activity-connector-${resourceToken}'
    displayName: 'Learning activity connector (${environmentName})'
    managedIdentityPrincipalId: apiUserAssignedIdentity.outputs.principalId
    graphRoles: multiTenantAppRoles
  }
}

var appClientId = multiTenantApp.?outputs.appId ?? connectorAppClientId

module api 'app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    location: location
    tags: tags
    applicationInsightsName: monitoring.outputs.name
    appServicePlanId: appServicePlan.outputs.resourceId
    runtimeName: 'python'
    runtimeVersion: '3.11' // the version the code targets (pyproject.toml requires-python)
    storageAccountName: storage.outputs.name
    deploymentStorageContainerName: deploymentStorageContainerName
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    identityId: apiUserAssignedIdentity.outputs.resourceId
    identityClientId: apiUserAssignedIdentity.outputs.clientId
    connectorProvidersSecretUri: keyVault.outputs.connectorProvidersSecretUri
    graphBaseUrl: graphBaseUrl
    reconcileSchedule: reconcileSchedule
    reconcileEnabled: reconcileEnabled
    connectorAppClientId: appClientId
    virtualNetworkSubnetId: appSubnetId
  }
  // The roles exist before the app first starts, so that host storage and the Key Vault reference resolve at once
  // (role propagation can still lag by a few minutes; see the README, Troubleshooting).
  dependsOn: [
    rbac
    storageData
  ]
}

// Outputs become azd environment values (.azure/<env>/.env); the postprovision hook reads
// AZURE_MANAGED_IDENTITY_PRINCIPAL_ID. Deliberately no output named AZURE_CLIENT_ID: azure.identity would pick it up
// in the hook's environment and look for a managed identity on the operator's machine.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output SERVICE_API_NAME string = api.outputs.SERVICE_API_NAME
output AZURE_FUNCTION_APP_NAME string = api.outputs.SERVICE_API_NAME
output AZURE_FUNCTION_URL string = 'https://${api.outputs.SERVICE_API_DEFAULT_HOSTNAME}'
output CONNECTOR_WEBHOOK_URL string = 'https://${api.outputs.SERVICE_API_DEFAULT_HOSTNAME}/api/providers/{registrationId}/course-activities'
output CONNECTOR_XAPI_ENDPOINT string = 'https://${api.outputs.SERVICE_API_DEFAULT_HOSTNAME}/api/providers/{registrationId}/xapi/'
output AZURE_MANAGED_IDENTITY_PRINCIPAL_ID string = apiUserAssignedIdentity.outputs.principalId
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = apiUserAssignedIdentity.outputs.clientId
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output APPLICATIONINSIGHTS_CONNECTION_STRING string = monitoring.outputs.connectionString
output CONNECTOR_APP_CLIENT_ID string = appClientId
// The link each customer tenant's administrator opens, with the customer's tenant id for {tenantId}.
output CONNECTOR_ADMIN_CONSENT_URL string = empty(appClientId) ? '' : '${environment().authentication.loginEndpoint}{tenantId}/adminconsent?client_id=${appClientId}'
