// The multi-tenant app registration that reaches the customer tenants (README, Serve many tenants), without a secret:
// its one credential is a federated identity credential trusting the app's user-assigned identity, whose token for
// api://AzureADTokenExchange the code presents as the app's client assertion (connector/adapters/tenants.py).
// Declared with the Microsoft Graph Bicep extension (alias in infra/bicepconfig.json, Bicep 0.36.1 or later); whoever
// deploys needs Application.ReadWrite.All in Microsoft Graph (e.g. the Application Administrator Entra role).
extension microsoftGraphV1

@description('Unique name of the app registration: the next deployment updates the same app.')
param uniqueName string

@description('The name customer administrators see on the consent page.')
param displayName string

@description('Object (principal) id of the user-assigned managed identity the app trusts.')
param managedIdentityPrincipalId string

@description('Microsoft Graph application roles the app asks for: a customer tenant\'s admin consent grants them.')
param graphRoles array

// Microsoft Graph's service principal, by its well-known app id: its app roles give each role's id by name (the same
// ids in every tenant).
resource microsoftGraph 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: '00000003-0000-0000-c000-000000000000'
}

resource app 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: uniqueName
  displayName: displayName
  signInAudience: 'AzureADMultipleOrgs' // any organization's tenant may consent
  requiredResourceAccess: [
    {
      resourceAppId: microsoftGraph.appId
      resourceAccess: [
        for role in graphRoles: {
          id: filter(microsoftGraph.appRoles, appRole => appRole.value == role)[0].id
          type: 'Role' // application permissions, granted by admin consent
        }
      ]
    }
  ]

  resource managedIdentityCredential 'federatedIdentityCredentials@v1.0' = {
    name: '${app.uniqueName}/connector-managed-identity'
    description: 'The connector\'s user-assigned managed identity: the app\'s only credential'
    issuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
    subject: managedIdentityPrincipalId
    audiences: [
      'api://AzureADTokenExchange'
    ]
  }
}

output appId string = app.appId
