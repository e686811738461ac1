# Installation layout and the Debian packages (`cpack` in the build directory).
#
#   objstore                 the node, objstore-cli, objstore-sim, the systemd
#                            unit, /etc/default/objstore (a conffile) and the
#                            maintainer scripts that create the objstore user
#                            and /var/lib/objstore (packaging/debian/)
#   libobjstore-client-dev   include/objstore/client.h and libobjstore_client.a
#
# Runtime dependencies are computed by dpkg-shlibdeps (package dpkg-dev).
include(GNUInstallDirs)

install(TARGETS objstore objstore-cli objstore-sim
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT server)
# Absolute on purpose: systemd and /etc/default do not move with the prefix.
install(FILES ${CMAKE_CURRENT_LIST_DIR}/objstore.service
        DESTINATION /lib/systemd/system COMPONENT server)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/objstore.default
        DESTINATION /etc/default RENAME objstore
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ COMPONENT server)
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/docs/API.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT server)

install(TARGETS objstore_client ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
# Beast's templates make the archive's debug sections ~45 MB; users rebuild
# with their own -g when they need them.
install(CODE "execute_process(COMMAND ${CMAKE_STRIP} --strip-debug
  \$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/libobjstore_client.a)"
        COMPONENT dev)
install(FILES ${CMAKE_SOURCE_DIR}/include/objstore/client.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/objstore COMPONENT dev)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME objstore)
set(CPACK_PACKAGE_VENDOR "objstore")
set(CPACK_PACKAGE_CONTACT "objstore maintainers <objstore@localhost>"
    CACHE STRING "Maintainer field of the .deb packages")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL server dev)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/SphereSoftware/objstore")

set(CPACK_DEBIAN_SERVER_PACKAGE_NAME objstore)
set(CPACK_DEBIAN_SERVER_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_SERVER_PACKAGE_DEPENDS "adduser")
# The first line of each description is the package's synopsis.
set(CPACK_DEBIAN_SERVER_DESCRIPTION
    "distributed near-cache for S3\nobjstore nodes keep objects on local disk in front of an S3 bucket (or any\nS3-compatible store), replicate them between each other and serve one HTTP\nAPI. This package holds the node, objstore-cli and the systemd service.")
set(CPACK_DEBIAN_SERVER_PACKAGE_CONTROL_EXTRA
    ${CMAKE_CURRENT_LIST_DIR}/debian/conffiles ${CMAKE_CURRENT_LIST_DIR}/debian/postinst
    ${CMAKE_CURRENT_LIST_DIR}/debian/prerm ${CMAKE_CURRENT_LIST_DIR}/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libobjstore-client-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_DESCRIPTION
    "C++ client library for objstore nodes\nThe public HTTP API of an objstore node as C++ calls: a header and a static\nlibrary (link with -lobjstore_client -pthread).")

include(CPack)
