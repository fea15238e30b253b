export { relativeError } from '../../../src/runtime/util/numeric';
