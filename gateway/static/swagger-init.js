// Starts Swagger UI on the merged document the gateway serves.
window.ui = SwaggerUIBundle({
  url: '/api/v1/openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  persistAuthorization: false,
  // No calls to the public validator: the page's CSP allows connecting to 'self' only.
  validatorUrl: null,
});
