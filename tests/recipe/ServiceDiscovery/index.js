// The recipe's own ServiceDiscovery, copied verbatim from the Node.js recipe this handler replaces
// ("Automated Service Discovery with Service Connector and Tables", recipe-version 1.1, step 8,
// ServiceDiscovery/index.js). Nothing below this header is changed.
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
    const healthClient = new TableClient(storageConnectionString, 'HealthStatus');
    
    try {
        const serviceType = req.query.serviceType;
        const serviceName = req.query.serviceName;
        const healthyOnly = req.query.healthyOnly === 'true';
        
        // Query services based on parameters
        let queryOptions = {};
        if (serviceType) {
            queryOptions.filter = `PartitionKey eq '${serviceType}'`;
        }
        if (serviceName) {
            queryOptions.filter = queryOptions.filter 
                ? `${queryOptions.filter} and RowKey eq '${serviceName}'`
                : `RowKey eq '${serviceName}'`;
        }
        
        const services = [];
        const servicesIterator = registryClient.listEntities(queryOptions);
        
        for await (const service of servicesIterator) {
            let healthStatus = null;
            
            // Get health status if requested
            if (healthyOnly) {
                try {
                    healthStatus = await healthClient.getEntity(service.partitionKey, service.rowKey);
                } catch (error) {
                    // Skip services without health data if healthyOnly is true
                    continue;
                }
                
                if (healthStatus.status !== 'healthy') {
                    continue;
                }
            }
            
            services.push({
                serviceName: service.serviceName,
                endpoint: service.endpoint,
                healthEndpoint: service.healthEndpoint,
                serviceType: service.serviceType,
                version: service.version,
                tags: JSON.parse(service.tags || '[]'),
                metadata: JSON.parse(service.metadata || '{}'),
                registeredAt: service.registeredAt,
                lastHeartbeat: service.lastHeartbeat,
                healthStatus: healthStatus ? {
                    status: healthStatus.status,
                    lastChecked: healthStatus.lastChecked,
                    responseTime: healthStatus.responseTime
                } : null
            });
        }
        
        context.res = {
            status: 200,
            body: {
                services: services,
                count: services.length,
                timestamp: new Date().toISOString()
            }
        };
        
    } catch (error) {
        context.log.error('Service discovery failed:', error);
        context.res = {
            status: 500,
            body: { error: 'Service discovery failed' }
        };
    }
};
