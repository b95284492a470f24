from channels.generic.websocket import WebsocketConsumer


class EchoConsumer(WebsocketConsumer):
    def receive(self, text_data=None, bytes_data=None):
        if text_data is not None:
            self.send(text_data=f"echo: {text_data}")
        else:
            self.send(bytes_data=bytes_data)
