// The one exported entry point of a connector module. DPONE_CONNECTOR_REGISTER is
// set per module by dpone_add_connector() to the connector's register function.
#include "core/connector/registry.hpp"

namespace dpone {
void DPONE_CONNECTOR_REGISTER(ConnectorRegistry& registry);
}

DPONE_MODULE(::dpone::DPONE_CONNECTOR_REGISTER)
