# SPDX-License-Identifier: MIT
# The Debian package: `cpack -G DEB` in a build directory configured with
# -DCMAKE_INSTALL_PREFIX=/usr (see README.md, "Debian package"). Included
# from the root CMakeLists.txt after everything that installs.
#
# The package holds what `cmake --install` installs: goshmd and goshmctl,
# libgoshm.so.0 and libgoshm.a, the header, the pkg-config and CMake files,
# the man pages, the examples, and the systemd units (in /lib/systemd/system
# when the prefix is /usr, see systemd/CMakeLists.txt). The package's prefix
# is the build's CMAKE_INSTALL_PREFIX, so that the units' ExecStart, written
# at configure time, names the goshmd the package installs.
#
# Why CPack rather than a debian/ directory: the package is built in CI from
# the same CMake install rules the tests check, with no second description of
# the file list to keep in step; dpkg-shlibdeps still computes the
# dependencies.

set(CPACK_PACKAGE_NAME goshm)
set(CPACK_PACKAGE_VENDOR "The goshm authors")
set(CPACK_PACKAGE_CONTACT "The goshm authors")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "multi-process shared-memory allocator service")
set(CPACK_PACKAGE_DESCRIPTION
    "goshm gives cooperating Linux processes one heap in shared memory: any of them can allocate, hand the object to another process as an offset, and any process can free it. goshmd owns the heap; libgoshm, linked into the processes, allocates from per-thread caches without locks or system calls.")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
# Install with DESTDIR into the staging tree and the real prefix as
# CMAKE_INSTALL_PREFIX: the systemd units' directory and ExecStart are
# computed from it at install time (systemd/CMakeLists.txt).
set(CPACK_SET_DESTDIR ON)
if(NOT CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  message(STATUS "cpack -G DEB: the package will install under ${CMAKE_INSTALL_PREFIX} "
                 "(configure with -DCMAKE_INSTALL_PREFIX=/usr for a Debian-style package)")
endif()

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)          # goshm_0.1.0-1_amd64.deb
set(CPACK_DEBIAN_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)           # dependencies from dpkg-shlibdeps, not by hand
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)     # a shlibs file for packages built against libgoshm
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
if(GOSHM_BUILD_PYTHON)
  # The Python module (python/) needs the interpreter it was built for, which
  # dpkg-shlibdeps cannot see (an extension module does not link libpython):
  # suggested, so that C users of libgoshm do not pull python3 in.
  set(CPACK_DEBIAN_PACKAGE_SUGGESTS "python3 (>= ${Python3_VERSION_MAJOR}.${Python3_VERSION_MINOR}), python3-numpy")
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_SOURCE_GENERATOR TGZ)
set(CPACK_SOURCE_IGNORE_FILES "/\\\\.git/" "/build[^/]*/" "/_build/")
include(CPack)
