/**
 * The TRIPLEX runtime: everything that computes, with no dependency on VS Code. Notebook cells,
 * the `triplex` command line and plain Node tests all use it through this module.
 */
export { initCompute, computeReport, backendMemoryBytes } from './compute/backend';
export type { BackendChoice, BackendName, ComputeOptions, ComputeReport, EngineStatus } from './compute/backend';
export { createResNet18, normalizeImageNet, resnet18ParameterShapes, resnet18TensorsFrom } from './model/resnet18';
export type { ForwardMode, ResNet18, ResNet18Options } from './model/resnet18';
export { loadStateDict, readPytorchCheckpoint, readSafetensors, stripKeyPrefixes, WeightFileError } from './weights';
export type { HostTensor, StateDict } from './weights';
