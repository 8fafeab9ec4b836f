# Included into every CMake project the real-ROS test stage builds (scripts/ros_stage.py passes
# -DCMAKE_PROJECT_INCLUDE=<this file> through colcon's --cmake-args).
#
# Why: the ROS wheels on PyPI export CMake targets (e.g. std_msgs::std_msgs__rosidl_generator_py)
# whose INTERFACE_INCLUDE_DIRECTORIES name the folders of the manylinux image that built them
# (/opt/python/cp311-cp311/include/python3.11 and numpy's _core/include there). CMake's generate
# step refuses imported targets with non-existent include folders. Instead of creating those
# folders (system folders: not ours to write), this hook waits until the project's CMakeLists.txt
# has run (all find_package calls done) and points such entries at this machine's Python and numpy
# headers, passed in as SAM2_ROS_STAGE_PYTHON_INCLUDE and SAM2_ROS_STAGE_NUMPY_INCLUDE.
include_guard(DIRECTORY)

function(_sam2_ros_stage_repoint_includes)
  get_property(_targets DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  foreach(_target IN LISTS _targets)
    get_target_property(_dirs "${_target}" INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs)
      continue()
    endif()
    set(_new "")
    set(_changed FALSE)
    foreach(_dir IN LISTS _dirs)
      if(NOT _dir MATCHES "^\\$<" AND NOT EXISTS "${_dir}")
        if(_dir MATCHES "/include/python3\\.[0-9]+$")
          set(_dir "${SAM2_ROS_STAGE_PYTHON_INCLUDE}")
          set(_changed TRUE)
        elseif(_dir MATCHES "/numpy/(_core|core)/include$")
          set(_dir "${SAM2_ROS_STAGE_NUMPY_INCLUDE}")
          set(_changed TRUE)
        endif()
      endif()
      list(APPEND _new "${_dir}")
    endforeach()
    if(_changed)
      list(REMOVE_DUPLICATES _new)
      set_target_properties("${_target}" PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_new}")
    endif()
  endforeach()
endfunction()

if(NOT SAM2_ROS_STAGE_PYTHON_INCLUDE OR NOT SAM2_ROS_STAGE_NUMPY_INCLUDE)
  message(FATAL_ERROR "colcon_hooks.cmake needs -DSAM2_ROS_STAGE_PYTHON_INCLUDE and -DSAM2_ROS_STAGE_NUMPY_INCLUDE")
endif()
cmake_language(DEFER DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}" CALL _sam2_ros_stage_repoint_includes)
