// The board's live parts: the feed over Server-Sent Events, posting without a reload, the chat
// over a WebSocket. The pages work without this script too (plain forms, reload to see posts).
"use strict";

const feed = document.getElementById("feed");
const live = document.getElementById("live");

function messageItem(message) {
  const item = document.createElement("li");
  item.className = "message fresh";
  item.dataset.id = String(message.id);
  const author = document.createElement("span");
  author.className = "author";
  author.textContent = message.author;
  const text = document.createElement("p");
  text.className = "text";
  text.textContent = message.text;
  item.append(author, text);
  if (message.image) {
    const image = document.createElement("img");
    image.src = "/uploads/" + encodeURIComponent(message.image);
    image.alt = "image from " + message.author;
    item.append(image);
  }
  return item;
}

function showMessage(message) {
  if (feed.querySelector(`[data-id="${message.id}"]`)) return; // already on the page
  feed.prepend(messageItem(message));
}

// The browser reconnects by itself and sends Last-Event-ID: the server resumes after it.
const events = new EventSource("/events");
events.addEventListener("open", () => live.classList.add("on"));
events.addEventListener("error", () => live.classList.remove("on"));
events.addEventListener("message", (event) => showMessage(JSON.parse(event.data)));

const postForm = document.getElementById("post-form");
if (postForm) {
  const error = document.getElementById("post-error");
  postForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const body = new FormData(postForm);
    const response = await fetch(postForm.action, {
      method: "POST",
      body,
      headers: { accept: "application/json", "x-csrftoken": body.get("csrftoken") },
    });
    if (response.ok) {
      showMessage(await response.json());
      postForm.reset();
    } else {
      error.textContent = `${response.status}: ${await response.text()}`;
      error.hidden = false;
    }
  });
}

const chat = document.getElementById("chat");
if (chat) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/chat`);
  socket.addEventListener("message", (event) => {
    const line = JSON.parse(event.data);
    const item = document.createElement("li");
    const author = document.createElement("strong");
    author.textContent = line.author + ": ";
    item.append(author, document.createTextNode(line.text));
    chat.append(item);
    chat.scrollTop = chat.scrollHeight;
  });
  const chatForm = document.getElementById("chat-form");
  const input = document.getElementById("chat-line");
  chatForm.addEventListener("submit", (event) => {
    event.preventDefault();
    if (input.value.trim() && socket.readyState === WebSocket.OPEN) {
      socket.send(input.value);
      input.value = "";
    }
  });
}
