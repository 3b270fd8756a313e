// Key Vault holding CONNECTOR_PROVIDERS (the providers' webhook secrets). The app reads it through a Key Vault
// reference with its user-assigned identity (Key Vault Secrets User, see rbac.bicep); nobody else gets a data role.
param name string
param location string = resourceGroup().location
param tags object = {}

@secure()
@description('The CONNECTOR_PROVIDERS JSON text.')
param connectorProvidersJson string

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
    softDeleteRetentionInDays: 7 // the minimum: `azd down --purge` can then free the name quickly
    // Purge protection is left off: once on it can never be turned off, and it blocks `azd down --purge`.
    // Public endpoint: the Flex app here has no virtual network. Access is still Entra ID + RBAC only.
    publicNetworkAccess: 'Enabled'
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
// Versionless URI: the app follows the latest version of the secret.
output connectorProvidersSecretUri string = connectorProvidersSecret.properties.secretUri
