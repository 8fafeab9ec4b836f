# Evaluates a rosidl interface package's CMakeLists.txt without ROS and checks the interface files
# it hands to rosidl_generate_interfaces() the way rosidl_cmake's macro treats them on Humble
# (rosidl 3) or Jazzy (rosidl 4). Written for tests/test_interfaces_cmake.py, not copied from rosidl.
#
#   cmake -DPACKAGE_DIR=<folder with CMakeLists.txt> -DGENERATION=humble|jazzy -DOUT=<file> -P rosidl_arguments.cmake
#
# OUT receives one line per interface: "<folder>/<file>", the folder rosidl takes as the
# interface's kind (msg, srv, action). It names the generated code's namespace, the install
# folder under share/<package>/ and the ament index entry. A failing CMake step ends the script
# with CMake's own error, as it ends a real configure.
cmake_minimum_required(VERSION 3.12)

foreach(_required PACKAGE_DIR GENERATION OUT)
  if(NOT DEFINED ${_required})
    message(FATAL_ERROR "pass -D${_required}=...")
  endif()
endforeach()
if(NOT GENERATION MATCHES "^(humble|jazzy)$")
  message(FATAL_ERROR "GENERATION must be humble or jazzy, got '${GENERATION}'")
endif()

# Commands that need a ROS installation do nothing here; project() is not scriptable.
macro(project _name)
  set(PROJECT_NAME "${_name}")
endmacro()
macro(find_package)
endmacro()
macro(ament_export_dependencies)
endmacro()
macro(ament_package)
endmacro()

function(rosidl_generate_interfaces target)
  cmake_parse_arguments(_ARG "ADD_LINTER_TESTS;SKIP_INSTALL;SKIP_GROUP_MEMBERSHIP_CHECK"
    "LIBRARY_NAME" "DEPENDENCIES" ${ARGN})
  if(NOT _ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "no interface files")
  endif()
  set(_lines "")
  foreach(_argument IN LISTS _ARG_UNPARSED_ARGUMENTS)
    # Both generations: an absolute argument must be "<absolute base>:<relative path>"; a
    # relative one is taken relative to the package folder and becomes that tuple.
    if(IS_ABSOLUTE "${_argument}")
      string(FIND "${_argument}" ":" _colon REVERSE)
      if(_colon EQUAL -1)
        message(FATAL_ERROR "absolute '${_argument}' is not <base>:<relative path>")
      endif()
      string(SUBSTRING "${_argument}" 0 ${_colon} _base)
      math(EXPR _start "${_colon} + 1")
      string(SUBSTRING "${_argument}" ${_start} -1 _relative)
    else()
      set(_base "${CMAKE_CURRENT_SOURCE_DIR}")
      set(_relative "${_argument}")
    endif()
    if(NOT EXISTS "${_base}/${_relative}")
      message(FATAL_ERROR "'${_base}/${_relative}' does not exist")
    endif()
    # The interface's kind is the name of the relative path's folder. rosidl 4 (Iron, Jazzy)
    # takes that name with the folder unquoted, so an empty folder leaves get_filename_component
    # two arguments: "get_filename_component called with incorrect number of arguments".
    get_filename_component(_kind "${_relative}" DIRECTORY)
    if(GENERATION STREQUAL "jazzy")
      get_filename_component(_kind ${_kind} NAME)
    else()
      get_filename_component(_kind "${_kind}" NAME)
    endif()
    get_filename_component(_name "${_relative}" NAME)
    list(APPEND _lines "${_kind}/${_name}")
  endforeach()
  string(REPLACE ";" "\n" _lines "${_lines}")
  file(WRITE "${OUT}" "${_lines}\n")
endfunction()

set(CMAKE_CURRENT_SOURCE_DIR "${PACKAGE_DIR}")
include("${PACKAGE_DIR}/CMakeLists.txt")
