// The recipe's own HealthMonitor, copied verbatim from the Node.js recipe this handler replaces
// ("Automated Service Discovery with Service Connector and Tables", recipe-version 1.1, step 4,
// HealthMonitor/index.js). Nothing below this header is changed.
//
// As written it cannot run at all: it passes the connection string to the `TableClient`
// constructor, which takes a table service URL (`TableClient.fromConnectionString` is the call
// for a connection string), so every invocation throws "Invalid URL". That one bug is shimmed by
// ../driver.js where it loads @azure/data-tables, not edited here. Run by
// tests/integration/recipe.rs.

const { TableClient } = require('@azure/data-tables');
const axios = require('axios');

module.exports = async function (context, myTimer) {
    const storageConnectionString = process.env.STORAGE_CONNECTION_STRING;
    const registryClient = new TableClient(storageConnectionString, 'ServiceRegistry');
    const healthClient = new TableClient(storageConnectionString, 'HealthStatus');
    
    try {
        // Query all registered services
        const services = registryClient.listEntities();
        
        for await (const service of services) {
            const healthStatus = await checkServiceHealth(service);
            
            // Update health status in table
            await healthClient.upsertEntity({
                partitionKey: service.partitionKey,
                rowKey: service.rowKey,
                serviceName: service.serviceName,
                status: healthStatus.status,
                lastChecked: new Date().toISOString(),
                responseTime: healthStatus.responseTime,
                errorMessage: healthStatus.errorMessage || ''
            });
            
            context.log(`Health check completed for ${service.serviceName}: ${healthStatus.status}`);
        }
    } catch (error) {
        context.log.error('Health monitoring failed:', error);
    }
};

async function checkServiceHealth(service) {
    try {
        const startTime = Date.now();
        const response = await axios.get(service.healthEndpoint || service.endpoint, {
            timeout: 5000,
            validateStatus: (status) => status < 500
        });
        
        const responseTime = Date.now() - startTime;
        
        return {
            status: response.status < 400 ? 'healthy' : 'unhealthy',
            responseTime: responseTime,
            errorMessage: response.status >= 400 ? `HTTP ${response.status}` : null
        };
    } catch (error) {
        return {
            status: 'unhealthy',
            responseTime: 0,
            errorMessage: error.message
        };
    }
}
