// Every Azure role the deployment grants. The app's identity gets exactly what it uses, on the narrowest scope that
// holds it: the queues, the tables and the secret themselves rather than the account and the vault. The operator gets
// queue access only when asked for (operatorQueueAccess in main.bicep). Role definition ids are the built-in ones
// (tests/infra checks them against the published list).
param storageAccountName string
param appInsightsName string
param keyVaultName string
param managedIdentityPrincipalId string
@description('The queues the app uses (created by storage-data.bicep).')
param queueNames array
@description('The tables the app uses (created by storage-data.bicep).')
param tableNames array
@description('The Key Vault secret holding CONNECTOR_PROVIDERS.')
param connectorProvidersSecretName string

@description('Principal that may re-queue dead letters (`python -m connector replay`); empty: nobody.')
param operatorPrincipalId string = ''
@allowed([
  'User'
  'ServicePrincipal'
])
param operatorPrincipalType string = 'User'

var storageBlobDataOwnerRoleId = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner
var storageQueueDataContributorRoleId = '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // Storage Queue Data Contributor
var storageTableDataContributorRoleId = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // Storage Table Data Contributor
var monitoringMetricsPublisherRoleId = '3913510d-42f4-4e42-8a64-420c390055eb' // Monitoring Metrics Publisher
var keyVaultSecretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6' // Key Vault Secrets User

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: storageAccount
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = [
  for queueName in queueNames: {
    parent: queueService
    name: queueName
  }
]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' existing = {
  parent: storageAccount
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = [
  for tableName in tableNames: {
    parent: tableService
    name: tableName
  }
]

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource connectorProvidersSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = {
  parent: vault
  name: connectorProvidersSecretName
}

// Host storage (AzureWebJobsStorage: leases, keys) and the Flex deployment package container.
resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storageAccount.id, managedIdentityPrincipalId, storageBlobDataOwnerRoleId)
  scope: storageAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwnerRoleId)
    principalId: managedIdentityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// course-activity-updates and course-activity-updates-poison, each: the queue trigger and output bindings, and the
// code's own delayed re-queueing. Contributor, not the message reader/processor roles: the host updates messages and
// creates the poison queue if it is missing.
resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (queueName, index) in queueNames: {
    name: guid(queues[index].id, managedIdentityPrincipalId, storageQueueDataContributorRoleId)
    scope: queues[index]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributorRoleId)
      principalId: managedIdentityPrincipalId
      principalType: 'ServicePrincipal'
    }
  }
]

// courseactivitystate (the activity state the worker merges into, ETag-guarded writes) and xapistatements, each.
resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (tableName, index) in tableNames: {
    name: guid(tables[index].id, managedIdentityPrincipalId, storageTableDataContributorRoleId)
    scope: tables[index]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributorRoleId)
      principalId: managedIdentityPrincipalId
      principalType: 'ServicePrincipal'
    }
  }
]

// Application Insights has local (key) authentication disabled: the host sends telemetry as the identity.
resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, managedIdentityPrincipalId, monitoringMetricsPublisherRoleId)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    principalId: managedIdentityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Reads the connector-providers secret, and no other, for the CONNECTOR_PROVIDERS Key Vault reference
// (keyVaultReferenceIdentity).
resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(connectorProvidersSecret.id, managedIdentityPrincipalId, keyVaultSecretsUserRoleId)
  scope: connectorProvidersSecret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUserRoleId)
    principalId: managedIdentityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Optional: the operator re-queues dead letters from course-activity-updates-poison to course-activity-updates with
// their own Azure CLI login (and `connector check` reads the queue's length).
resource operatorQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (queueName, index) in queueNames: if (!empty(operatorPrincipalId)) {
    name: guid(queues[index].id, operatorPrincipalId, storageQueueDataContributorRoleId)
    scope: queues[index]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributorRoleId)
      principalId: operatorPrincipalId
      principalType: operatorPrincipalType
    }
  }
]
