// The libvirt domain XML <interface> element of a port, built with pugixml
// (values are escaped by the XML writer; nothing is concatenated into XML).
//
//   vDPA (kernel, sim):       <interface type='vdpa'>
//                               <mac address='52:54:00:00:00:01'/>
//                               <source dev='/dev/vhost-vdpa-3'/>
//                               <model type='virtio'/>
//                             </interface>
//     MTU and queue pairs are properties of the vDPA device itself
//     (VDPA_ATTR_DEV_NET_CFG_MTU / _MAX_VQP), so the element does not repeat them.
//   vhost-user (DPDK vDPA):   <interface type='vhostuser'>
//                               <mac address='...'/>
//                               <source type='unix' path='/run/.../nfo....sock' mode='client'>
//                                 <reconnect enabled='yes' timeout='5'/>
//                               </source>
//                               <model type='virtio'/>
//                               <mtu size='9000'/>           (when not 1500)
//                               <driver queues='4'/>         (when more than 1)
//                             </interface>
//     nicoffload's DPDK side is the vhost-user server, so QEMU is the client
//     and reconnects when the daemon restarts. (QEMU also needs shared guest
//     memory, <memoryBacking><access mode='shared'/>, a domain-level setting.)
#pragma once

#include <string>

#include "nicoffload/common/error.h"
#include "nicoffload/model/intent.h"

namespace nicoffload::vdpa {

// Errors: kInvalidValue when `dev_path` is not an absolute path.
Result<std::string> vdpaInterfaceXml(const std::string& dev_path, const model::Port& port);

// Errors: kInvalidValue when `socket_path` is not an absolute path.
Result<std::string> vhostUserInterfaceXml(const std::string& socket_path, const model::Port& port);

}  // namespace nicoffload::vdpa
