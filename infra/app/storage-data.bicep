// The connector's queues and state table, on the account the AVM storage module created. Created through Azure
// Resource Manager (control plane), so it works with shared-key access disabled.
param storageAccountName string
param queueNames array
param tableNames array

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: storageAccount
  name: 'default'
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' existing = {
  parent: storageAccount
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for queueName in queueNames: {
    parent: queueService
    name: queueName
  }
]

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for tableName in tableNames: {
    parent: tableService
    name: tableName
  }
]

// The names, once the queues and tables exist: rbac.bicep scopes the identity's roles to them.
output queueNames array = [for (queueName, index) in queueNames: queues[index].name]
output tableNames array = [for (tableName, index) in tableNames: tables[index].name]
