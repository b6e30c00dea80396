"""Validation of the deployable artefacts: WorkflowTemplates, kustomize overlays, Dockerfile."""
