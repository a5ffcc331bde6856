"""robosuite Lift and PickPlaceCan (Panda, OSC_POSE): env wrapper, scripted experts, demos."""
