// GET /docs/upload: a page where a person tries a resumable upload. tus-js-client (served from our origin, see
// docs.ts) sends the file to /uploads/tus/ in 5 MiB chunks, and the page then waits on the File until it is done.
// The script is a file of its own, since the page's Content-Security-Policy runs scripts from 'self' only.

export const UPLOAD_PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Resumable upload · file-processor</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
  <style>
    body { font-family: system-ui, sans-serif; max-width: 48rem; margin: 2rem auto; padding: 0 1rem; }
    label { display: block; margin: 0.75rem 0; }
    input[type=password] { width: 100%; }
    progress { width: 80%; }
    #error { color: #b00020; }
    pre { background: #f4f4f4; padding: 0.75rem; overflow-x: auto; }
    pre:empty { display: none; }
  </style>
</head>
<body>
  <h1>Resumable upload</h1>
  <p>
    Sends a file with the <a href="https://tus.io/protocols/resumable-upload">tus protocol</a> to
    <code>/uploads/tus/</code> in 5 MiB chunks, retrying a chunk that fails; an upload cut short resumes where it
    stopped when you choose the same file again. Once the last byte is in, the page waits for the File to be
    processed. See also <a href="/docs">the API's documentation</a>.
  </p>
  <form id="upload-form">
    <label>Bearer token (needed when the service has API tokens)
      <input id="token" type="password" autocomplete="off" spellcheck="false">
    </label>
    <label>File <input id="file" type="file" required></label>
    <button id="start" type="submit">Upload</button>
  </form>
  <p><progress id="progress" max="100" value="0"></progress> <span id="percent">0%</span></p>
  <p>Status: <output id="status">no upload yet</output></p>
  <p id="error" role="alert"></p>
  <pre id="file-json"></pre>
  <script src="/docs/assets/tus.min.js"></script>
  <script src="/docs/assets/upload.js"></script>
</body>
</html>
`;

export const UPLOAD_SCRIPT = `'use strict';
(function () {
  const form = document.getElementById('upload-form');
  const fileInput = document.getElementById('file');
  const tokenInput = document.getElementById('token');
  const button = document.getElementById('start');
  const progress = document.getElementById('progress');
  const percent = document.getElementById('percent');
  const statusText = document.getElementById('status');
  const errorText = document.getElementById('error');
  const fileJson = document.getElementById('file-json');

  const authorization = () => {
    const token = tokenInput.value.trim();
    return token ? { Authorization: 'Bearer ' + token } : {};
  };
  const showProgress = (sent, total) => {
    const share = total > 0 ? Math.floor((sent / total) * 100) : 0;
    progress.value = share;
    percent.textContent = share + '%';
  };
  const fail = (message) => {
    statusText.textContent = 'error';
    errorText.textContent = message;
    button.disabled = false;
  };
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // GET /files/{id}/?wait=30 answers as soon as the File is processed or failed, or after 30 s with its state.
  async function watch(id) {
    for (;;) {
      const response = await fetch('/files/' + encodeURIComponent(id) + '/?wait=30', { headers: authorization() });
      if (response.status === 429) {
        await sleep(1000);
        continue;
      }
      const body = await response.json();
      if (!response.ok) throw new Error(body.detail || body.title || 'GET /files/' + id + '/ answered ' + response.status);
      statusText.textContent = body.status;
      fileJson.textContent = JSON.stringify(body, null, 2);
      if (body.status === 'processed' || body.status === 'failed') return;
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const file = fileInput.files[0];
    if (!file) return;
    button.disabled = true;
    errorText.textContent = '';
    fileJson.textContent = '';
    statusText.textContent = 'uploading';
    showProgress(0, file.size);
    const upload = new tus.Upload(file, {
      endpoint: '/uploads/tus/',
      chunkSize: 5 * 1024 * 1024,
      retryDelays: [0, 1000, 3000, 5000],
      metadata: { filename: file.name, filetype: file.type || 'application/octet-stream' },
      headers: authorization(),
      removeFingerprintOnSuccess: true,
      onProgress: showProgress,
      onError: (err) => {
        const status = err.originalResponse ? err.originalResponse.getStatus() : 0;
        fail(status === 401 ? 'The service needs a bearer token (401): paste one above.' : String(err.message || err));
      },
      onSuccess: () => {
        showProgress(file.size, file.size);
        // The upload URL's last segment is the id of the File the upload became.
        const id = upload.url.split('/').filter(Boolean).pop();
        statusText.textContent = 'uploaded';
        watch(id).then(
          () => (button.disabled = false),
          (err) => fail(String(err.message || err)),
        );
      },
    });
    upload.findPreviousUploads().then((previous) => {
      if (previous.length > 0) upload.resumeFromPreviousUpload(previous[0]);
      upload.start();
    }, (err) => fail(String(err.message || err)));
  });
})();
`;
