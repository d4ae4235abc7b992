// The recipe's own ServiceRegistrar, copied verbatim from the Node.js recipe this handler replaces
// ("Automated Service Discovery with Service Connector and Tables", recipe-version 1.1, step 7,
// ServiceRegistrar/index.js). Nothing below this header is changed.
//
// As written it cannot run at all: it passes the connection string to the `TableClient`
// constructor, which takes a table service URL (`TableClient.fromConnectionString` is the call
// for a connection string), so every invocation throws "Invalid URL". That one bug is shimmed by
// ../driver.js where it loads @azure/data-tables, not edited here. Run by
// tests/integration/recipe.rs.

const { TableClient } = require('@azure/data-tables');

module.exports = async function (context, req) {
    const storageConnectionString = process.env.STORAGE_CONNECTION_STRING;
    const registryClient = new TableClient(storageConnectionString, 'ServiceRegistry');
    
    try {
        const serviceInfo = req.body;
        
        // Validate required fields
        if (!serviceInfo.serviceName || !serviceInfo.endpoint) {
            context.res = {
                status: 400,
                body: { error: 'serviceName and endpoint are required' }
            };
            return;
        }
        
        // Create service registration entry
        const serviceEntity = {
            partitionKey: serviceInfo.serviceType || 'default',
            rowKey: serviceInfo.serviceName,
            serviceName: serviceInfo.serviceName,
            endpoint: serviceInfo.endpoint,
            healthEndpoint: serviceInfo.healthEndpoint || serviceInfo.endpoint,
            serviceType: serviceInfo.serviceType || 'default',
            version: serviceInfo.version || '1.0.0',
            tags: JSON.stringify(serviceInfo.tags || []),
            metadata: JSON.stringify(serviceInfo.metadata || {}),
            registeredAt: new Date().toISOString(),
            lastHeartbeat: new Date().toISOString()
        };
        
        await registryClient.upsertEntity(serviceEntity);
        
        context.res = {
            status: 200,
            body: { 
                message: 'Service registered successfully',
                serviceId: `${serviceEntity.partitionKey}:${serviceEntity.rowKey}`
            }
        };
        
        context.log(`Service registered: ${serviceInfo.serviceName}`);
        
    } catch (error) {
        context.log.error('Service registration failed:', error);
        context.res = {
            status: 500,
            body: { error: 'Service registration failed' }
        };
    }
};
