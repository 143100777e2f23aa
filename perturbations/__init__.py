"""perturbations"""
