# SPDX-License-Identifier: MIT
# The documentation cmake --install puts next to the programs: the man pages
# (kept next to the code they describe) and the examples, under
# share/man and share/doc/goshm. Included from the root CMakeLists.txt.

if(GOSHM_BUILD_SERVICE)
  install(FILES ${PROJECT_SOURCE_DIR}/daemon/goshmd.8 DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
  install(FILES ${PROJECT_SOURCE_DIR}/tools/goshmctl.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
  install(FILES ${PROJECT_SOURCE_DIR}/client/goshm.3 DESTINATION ${CMAKE_INSTALL_MANDIR}/man3)

  # One link page per public function (`man goshm_malloc` shows goshm(3)),
  # named from the header's GOSHM_API declarations so that none is missed.
  file(STRINGS ${PROJECT_SOURCE_DIR}/client/include/goshm/goshm.h goshm_api_lines REGEX "^GOSHM_API ")
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/client/include/goshm/goshm.h)
  set(GOSHM_MAN_LINKS "")
  foreach(line IN LISTS goshm_api_lines)
    if(line MATCHES "[ *](goshm_[a-z_]+)\\(")
      set(fn ${CMAKE_MATCH_1})
      file(WRITE ${PROJECT_BINARY_DIR}/man/man3/${fn}.3 ".so man3/goshm.3\n")
      list(APPEND GOSHM_MAN_LINKS ${PROJECT_BINARY_DIR}/man/man3/${fn}.3)
    endif()
  endforeach()
  install(FILES ${GOSHM_MAN_LINKS} DESTINATION ${CMAKE_INSTALL_MANDIR}/man3)

  install(FILES ${PROJECT_SOURCE_DIR}/examples/hello.c ${PROJECT_SOURCE_DIR}/examples/prodcons.c ${PROJECT_SOURCE_DIR}/examples/channel.c
                ${PROJECT_SOURCE_DIR}/examples/CMakeLists.txt ${PROJECT_SOURCE_DIR}/examples/Makefile
          DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
  install(FILES ${PROJECT_SOURCE_DIR}/LICENSE ${PROJECT_SOURCE_DIR}/CHANGELOG.md ${PROJECT_SOURCE_DIR}/README.md
          DESTINATION ${CMAKE_INSTALL_DOCDIR})
endif()
