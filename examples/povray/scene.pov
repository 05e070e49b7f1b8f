// Spillway POV-Ray example: an image-mapped planet spinning over a checkered
// floor while the camera orbits.  The animation is meant for frames 1-24; it is
// keyed on frame_number so any --frames range shows the same 24-frame motion.
#version 3.7;
global_settings { assumed_gamma 1.0 }

#include "colors.inc"   // standard include, found in POV-Ray's library
#include "props.inc"    // local include, uploaded with the scene

#declare T = (frame_number - 1) / 23;  // 0 at frame 1, 1 at frame 24

camera {
  location <7 * sin(radians(-30 + 60 * T)), 2.5, -7 * cos(radians(-30 + 60 * T))>
  look_at <0, 1, 0>
  angle 50
}

light_source { <4, 8, -6> color rgb <1, 0.97, 0.9> }
light_source { <-6, 5, -2> color rgb 0.3 shadowless }

background { color rgb <0.55, 0.7, 0.95> }

plane { y, 0 texture { Floor_Texture } }

sphere {
  <0, 1.2, 0>, 1.2
  texture {
    pigment { image_map { png "planet.png" map_type 1 interpolate 2 } }
    finish { specular 0.4 roughness 0.02 }
  }
  rotate y * (360 * T)
}

object { Pillar translate <2.5, 0, 1> }
object { Pillar translate <-2.5, 0, 1.5> }
