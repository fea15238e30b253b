/** A problem with one image file; `cause` carries the decoder's own message when there is one. */
export class ImageFileError extends Error {
  constructor(readonly file: string, message: string, options?: ErrorOptions) {
    super(`${file}: ${message}`, options);
    this.name = 'ImageFileError';
  }
}
