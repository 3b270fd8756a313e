// Key Vault holding CONNECTOR_PROVIDERS (the providers' webhook secrets). The app reads it through a Key Vault
// reference with its user-assigned identity (Key Vault Secrets User, see rbac.bicep); nobody else gets a data role.
param name string
param location string = resourceGroup().location
param tags object = {}

@secure()
@description('The CONNECTOR_PROVIDERS JSON text.')
param connectorProvidersJson string

@description('Network rules: the vault accepts only this subnet (and allowedIpRanges); empty: any network.')
param allowedSubnetId string = ''
@description('Public addresses or CIDR ranges the vault still accepts when allowedSubnetId is set.')
param allowedIpRanges array = []

var secretName = 'connector-providers'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true // Azure RBAC role assignments, no access policies
    enableSoftDelete: true
    softDeleteRetentionInDays: 7 // the minimum: a deleted vault and its secrets are gone for good after 7 days
    // A deleted vault or secret cannot be purged before its retention ends, by anyone: the webhook secrets cannot be
    // destroyed early by mistake or by an attacker. It can never be turned off again; `azd down --purge` then leaves
    // the vault soft-deleted for those 7 days (see the README, Deploy).
    enablePurgeProtection: true
    // Access always needs Entra ID and an Azure role; the network rules are optional (main.bicep appSubnetId).
    publicNetworkAccess: 'Enabled'
    networkAcls: empty(allowedSubnetId)
      ? {
          defaultAction: 'Allow'
          bypass: 'AzureServices'
        }
      : {
          defaultAction: 'Deny'
          bypass: 'AzureServices'
          virtualNetworkRules: [
            {
              id: allowedSubnetId
            }
          ]
          ipRules: map(allowedIpRanges, address => { value: address })
        }
  }
}

// Written through Azure Resource Manager (the deployment holds it as a secure parameter, never in its history).
// Every `azd provision` writes the value from the azd environment as a new version: that environment is the source
// of truth, so change CONNECTOR_PROVIDERS there, not only in the vault.
resource connectorProvidersSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: secretName
  properties: {
    value: connectorProvidersJson
    contentType: 'application/json'
  }
}

output name string = vault.name
output connectorProvidersSecretName string = connectorProvidersSecret.name
// Versionless URI: the app follows the latest version of the secret.
output connectorProvidersSecretUri string = connectorProvidersSecret.properties.secretUri
